"""The meta-gradient of the unrolled objective: finite differences, checkpointing, closures."""
from __future__ import annotations

import pytest
import torch

from discovery_fixtures import replace, tiny_config, tiny_problem
from trainables.discovery.unroll import meta_objective


pytestmark = pytest.mark.usefixtures("one_thread")


def meta_grad(config, checkpointed: bool, seed: int = 0) -> tuple[torch.Tensor, dict]:
    encoder, pair, batch = tiny_problem(config, seed)
    params = encoder.trainable()
    out = meta_objective(encoder, params, pair, batch, 1, config, checkpointed)
    for p in params.values():
        p.grad = None
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.clone() for n, p in params.items()}


@pytest.mark.parametrize("data_mode", ["split", "shared"])
@pytest.mark.parametrize("seed", [0, 1])
def test_meta_gradient_matches_central_differences(data_mode, seed):
    config = tiny_config(data_mode=data_mode)
    encoder, pair, batch = tiny_problem(config, seed)
    params = {n: p.detach() for n, p in encoder.trainable().items()}
    _, grads = meta_grad(config, False, seed)
    g = torch.Generator().manual_seed(100 + seed)
    v = {n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in params.items()}
    norm = torch.sqrt(sum((d ** 2).sum() for d in v.values()))
    v = {n: d / norm for n, d in v.items()}  # unit direction: the step stays far from ReLU kinks
    eps = 1e-6

    def loss_at(sign):
        shifted = {n: p + sign * eps * v[n] for n, p in params.items()}
        return meta_objective(encoder, shifted, pair, batch, 1, config, False).loss.detach()

    fd = (loss_at(1) - loss_at(-1)) / (2 * eps)
    analytic = sum((grads[n] * v[n]).sum() for n in params)
    assert abs(float(analytic)) > 1e-3
    assert abs(float(fd - analytic)) <= 1e-6 * abs(float(analytic))


@pytest.mark.parametrize("data_mode", ["split", "shared"])
def test_checkpointing_gives_the_same_meta_gradient(data_mode):
    config = tiny_config(data_mode=data_mode)
    loss_plain, plain = meta_grad(config, False)
    loss_ckpt, ckpt = meta_grad(config, True)
    assert float(loss_plain) == pytest.approx(float(loss_ckpt), abs=1e-12)
    for name in plain:
        assert torch.allclose(ckpt[name], plain[name], rtol=0, atol=1e-10), name


def test_checkpointed_gradient_reaches_every_encoder_layer():
    # The closure trap: soft labels reaching a reentrant-checkpointed step through a closure
    # drop out of the backward pass. Every encoder layer must get a non-zero gradient, through
    # the agreement loss alone (uniformity off), equal to the plain one.
    config = tiny_config(uniformity_coef=0.0)
    _, plain = meta_grad(config, False)
    _, ckpt = meta_grad(config, True)
    for name, g in ckpt.items():
        assert g.abs().max() > 1e-8, f"{name} gets no meta-gradient under checkpointing"
        assert torch.allclose(g, plain[name], rtol=0, atol=1e-10), name


def test_more_inner_steps_change_the_objective():
    loss3, _ = meta_grad(tiny_config(nsteps=3), False)
    loss2, _ = meta_grad(replace(tiny_config(), nsteps=2), False)
    assert float(loss3) != float(loss2)


def test_inner_step_is_sgd_on_the_mean_of_the_two_losses():
    """The authors' inner update: theta_k <- theta_k - lr * d/d theta_k [0.5 (l0 + l1)]."""
    import torch.nn.functional as F
    from torch.func import functional_call

    from trainables.discovery.unroll import sgd_step
    config = tiny_config()
    _, pair, batch = tiny_problem(config)
    x = batch.inner[0]
    y = torch.softmax(torch.randn(len(x), 2, generator=torch.Generator().manual_seed(1), dtype=x.dtype), 1)
    new = sgd_step(pair, config.inner_lr, config.precision, x[:8], y[:8], x[8:], y[8:], *pair.init)
    for k, (xk, yk) in enumerate(((x[:8], y[:8]), (x[8:], y[8:]))):
        params = {n: p.detach().clone().requires_grad_() for n, p in zip(pair.names[k], pair.halves(pair.init)[k])}
        logits = functional_call(pair.nets[k], params, (xk,))
        loss = 0.5 * -(yk * F.log_softmax(logits, 1)).sum(1).mean()  # network k's share of the mean loss
        grads = torch.autograd.grad(loss, list(params.values()))
        expected = [p - config.inner_lr * g for p, g in zip(params.values(), grads)]
        for got, want in zip(pair.halves(new)[k], expected):
            torch.testing.assert_close(got, want)
