"""The unrolled meta-objective: train a fixed pair of initialisations for nsteps differentiable
SGD steps on a task's soft labels, then measure how much the two trained networks disagree.

Everything here is functional (torch.func.functional_call over explicit parameter tuples), so
the meta-gradient flows from the agreement loss back through every inner step into the
encoder's parameters (second order: each inner gradient is taken with create_graph=True).

Checkpointing: each inner step and each encoder forward can run under
torch.utils.checkpoint, which keeps only step inputs and recomputes the step during the
backward pass. Every tensor a checkpointed function reads (images, soft labels, parameters)
is passed as an explicit argument, never through a closure: a closed-over tensor that
depends on the encoder (the soft labels do) is invisible to reentrant checkpointing, and
the meta-gradient then comes out silently wrong. Only modules, whose parameters are all
replaced by the explicit ones, and plain numbers go through arguments that are not tensors.

BatchNorm in the unrolled networks always normalises with the current batch's statistics
and keeps no running statistics (`track_running_stats=False`): the unrolled networks are
only ever used inside the loop, running statistics after nsteps steps would be a poor
estimate anyway, and an in-place running-stat update would run twice under checkpoint
recomputation. The agreement batch is therefore also normalised with its own statistics.
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint

from ..models import build_model
from ..pair import init_seeds
from .encoder import TaskEncoder, embed, soft_labels
from .losses import agreement_loss, soft_cross_entropy, uniformity_loss


def autocast(precision: str, device: torch.device):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batch_stats_only(model: nn.Module) -> nn.Module:
    """Make every BatchNorm of `model` use batch statistics always, with no running statistics."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None
    return model


class InnerPair:
    """The two unrolled networks: stateless modules plus their fixed initial parameters.

    The initialisation is the same at every meta-step (seeds from `pair_seed`), as in the paper.
    """

    def __init__(self, arch: str, width: float, image_shape: tuple[int, int, int], pair_seed: int,
                 device: torch.device | str, dtype: torch.dtype):
        self.nets, init = [], []
        for seed in init_seeds(pair_seed):
            with torch.random.fork_rng(devices=[]):  # weights depend on the seed alone, not the device
                torch.manual_seed(seed)
                net = batch_stats_only(build_model(arch, 2, width, tuple(image_shape)))
            net.to(device, dtype).train()
            self.nets.append(net)
            init.append({n: p.detach() for n, p in net.named_parameters()})
        self.names = tuple(tuple(p) for p in init)
        self.init = tuple(p for params in init for p in params.values())
        self.split = len(self.names[0])  # init[:split] belongs to network 0, the rest to network 1

    def logits(self, k: int, params: tuple[torch.Tensor, ...], x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.nets[k], dict(zip(self.names[k], params)), (x,))

    def halves(self, params):
        return params[:self.split], params[self.split:]


def sgd_step(pair: InnerPair, lr: float, precision: str, x0: torch.Tensor, y0: torch.Tensor,
             x1: torch.Tensor, y1: torch.Tensor, *params: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One differentiable SGD step of both networks (network k on (x_k, y_k)) on the mean of their
    losses; returns the new parameters as a function of the old ones and of the soft labels."""
    with torch.enable_grad():  # reentrant checkpointing runs the first pass under no_grad
        # The fixed initial parameters do not require grad; the inner gradient needs leaves.
        params = tuple(p if p.requires_grad else p.detach().requires_grad_() for p in params)
        p0, p1 = pair.halves(params)
        # The fused attention kernels (flash, memory-efficient) have no double backward; the math
        # one has. Set here, inside the step, so that checkpoint recomputation uses it too.
        with autocast(precision, x0.device), sdpa_kernel(SDPBackend.MATH):
            # The mean of the two losses, as the authors' inner step (their lr is per network of the mean)
            loss = 0.5 * (soft_cross_entropy(pair.logits(0, p0, x0), y0) + soft_cross_entropy(pair.logits(1, p1, x1), y1))
        grads = torch.autograd.grad(loss, params, create_graph=True)
    return tuple(p - lr * g for p, g in zip(params, grads))


def encode(encoder: TaskEncoder, names: tuple[str, ...], precision: str, x: torch.Tensor,
           *values: torch.Tensor, from_features: bool = False) -> torch.Tensor:
    """e(x) under the explicit encoder parameters `values` (named by `names`), in the input dtype."""
    with autocast(precision, x.device):
        e = embed(encoder, dict(zip(names, values)), x, from_features)
    return e.to(x.dtype)


@torch.no_grad()
def frozen_features(encoder: TaskEncoder, precision: str, x: torch.Tensor) -> torch.Tensor:
    """A frozen backbone's features of `x`, once, outside the graph: the unrolled loop and its
    checkpoint recomputations then only run the projection."""
    with autocast(precision, x.device):
        return encoder.features(x).to(x.dtype)


@dataclass(frozen=True)
class MetaBatch:
    """The images of one meta-step: one batch per inner step, and the held-out agreement batch."""
    inner: tuple[torch.Tensor, ...]
    outer: torch.Tensor


@dataclass(frozen=True)
class MetaOutput:
    """Outer loss (with graph back to the encoder) and its two parts."""
    loss: torch.Tensor
    agreement: torch.Tensor
    uniformity: torch.Tensor


def meta_objective(encoder: TaskEncoder, params: dict[str, torch.Tensor], pair: InnerPair, batch: MetaBatch,
                   task: int, config, checkpointed: bool) -> MetaOutput:
    """Agreement loss of the pair after len(batch.inner) unrolled steps on task `task`, plus
    uniformity_coef times the mean uniformity loss of the inner batches' embeddings.

    `params` are the encoder's trainable parameters (the gradient goes to them); `config` is a
    DiscoveryConfig (nsteps is len(batch.inner))."""
    def run(fn, *args):
        if checkpointed:
            return checkpoint(fn, *args, use_reentrant=True)
        return fn(*args)

    names, values = tuple(params), tuple(params.values())
    w = encoder.hyperplanes[task]
    theta, uniformity = pair.init, []
    frozen = encoder.freeze_backbone
    for x in batch.inner:
        inputs = frozen_features(encoder, config.precision, x) if frozen else x
        e = run(functools.partial(encode, from_features=frozen), encoder, names, config.precision, inputs, *values)
        uniformity.append(uniformity_loss(e, config.uniformity_t))
        y = soft_labels(e, w, config.task_temp)
        if config.data_mode == "split":
            h = len(x) // 2
            step_args = (x[:h], y[:h], x[h:], y[h:])
        else:
            step_args = (x, y, x, y)
        theta = run(sgd_step, pair, config.inner_lr, config.precision, *step_args, *theta)
    t0, t1 = pair.halves(theta)
    with autocast(config.precision, batch.outer.device):
        agreement = agreement_loss(pair.logits(0, t0, batch.outer), pair.logits(1, t1, batch.outer))
    uniformity = torch.stack(uniformity).mean()
    return MetaOutput(agreement + config.uniformity_coef * uniformity, agreement, uniformity)
