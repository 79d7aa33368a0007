"""A short discovery on synthetic images: it raises agreement, reports, and resumes exactly."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from discovery_fixtures import synthetic_dataset
from trainables.data import device_images
from trainables.data import make_split
from trainables.discovery import DiscoveryConfig, DiscoveryRun, discover
from trainables.discovery.run import discovery_split


pytestmark = pytest.mark.usefixtures("one_thread")


def small_config(**overrides) -> DiscoveryConfig:
    """8x8 images, MLP encoder and pair at width 1/8, 5 inner steps at a large inner lr (on the mean loss)."""
    base = dict(arch="mlp", width=0.125, h_dim=8, n_linear_tasks=8, nsteps=5, inner_batch_size=64,
                outer_batch_size=128, inner_lr=1.0, outer_lr=1e-2, uniformity_coef=0.2, meta_steps=100,
                holdout=200, outer_pool=200, probe_size=256, calibration_size=None, quick_eval_epochs=3,
                quick_eval_train_subset=400, quick_eval_holdout_subset=200, quick_eval_tasks=2)
    return DiscoveryConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def dataset():
    return synthetic_dataset()


def test_discovery_raises_agreement_and_keeps_tasks_balanced(dataset):
    history = []
    result = discover(dataset, small_config(quick_eval_every=100), "cpu", history.append)
    assert len(history) == result.steps == 100
    losses = [m["discovery/agreement_loss"] for m in history]
    first, last = sum(losses[:25]) / 25, sum(losses[-25:]) / 25
    assert last < 0.8 * first, (first, last)
    assert history[-1]["discovery/balance"] < 0.75
    for key in ("discovery/uniformity_loss", "discovery/similarity", "eval/agreement_task_0",
                "eval/agreement_task_1", "eval/agreement_mean", "perf/meta_steps_per_s"):
        assert key in history[-1]
    assert "eval/agreement_task_0" not in history[0]
    assert 0.5 <= history[-1]["eval/agreement_mean"] <= 1
    assert result.train_labels.shape == (len(dataset.train_y), 8)
    assert result.test_labels.shape == (len(dataset.test_y), 8)
    assert set(result.train_labels.unique().tolist()) <= {0, 1}


def test_resumed_discovery_matches_an_uninterrupted_one(dataset, tmp_path):
    config = small_config(meta_steps=6, nsteps=2, checkpointing="on")
    train, test = device_images(dataset, "cpu")
    straight = DiscoveryRun(train, test, config)
    while not straight.done:
        straight.step()

    first = DiscoveryRun(train, test, config)
    for _ in range(3):
        first.step()
    torch.save(first.state_dict(), tmp_path / "state.pt")
    resumed = DiscoveryRun(train, test, config)
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert resumed.steps == 3
    last = {}
    while not resumed.done:
        last = resumed.step()
    assert resumed.steps == straight.steps == 6
    a, b = straight.state_dict(), resumed.state_dict()
    for name, value in a["encoder"].items():
        assert torch.equal(value, b["encoder"][name]), name
    for key, state in a["optimizer"]["state"].items():
        for k, v in state.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(b["optimizer"]["state"][key][k]))
    assert last["step"] == 6


def test_state_of_another_config_is_refused_but_a_longer_run_resumes(dataset):
    train, test = device_images(dataset, "cpu")
    state = DiscoveryRun(train, test, small_config(meta_steps=1)).state_dict()
    with pytest.raises(ValueError, match="differs in nsteps"):
        DiscoveryRun(train, test, small_config(meta_steps=1, nsteps=4)).load_state_dict(state)
    longer = DiscoveryRun(train, test, small_config(meta_steps=2, quick_eval_every=5))
    longer.load_state_dict(state)
    assert not longer.done


def test_discovery_never_sees_the_agreement_holdout():
    config = DiscoveryConfig(arch="mlp", h_dim=4, n_linear_tasks=4, holdout=100, outer_pool=50, train_subset=300)
    split = discovery_split(1000, 10, config)
    as_holdout = set(make_split(1000, 10, 100, 0).holdout.tolist())
    inner, outer = set(split.train.tolist()), set(split.holdout.tolist())
    assert len(outer) == 50 and len(inner) == 300
    assert not (inner & outer) and not (inner & as_holdout) and not (outer & as_holdout)


def test_agreement_batch_is_fixed_as_the_authors():
    from trainables.discovery.run import draw_step
    config = DiscoveryConfig(arch="mlp", h_dim=4, n_linear_tasks=4, holdout=100, outer_pool=50, outer_batch_size=16)
    split = discovery_split(1000, 10, config)
    fixed = [draw_step(k, config, split)[2] for k in range(3)]
    assert all(torch.equal(fixed[0], f) for f in fixed) and torch.isin(fixed[0], split.holdout).all()
    other = draw_step(0, dataclasses.replace(config, step_seed=1), split)[2]
    assert not torch.equal(fixed[0], other)  # a run's batch depends on its step_seed
    assert not torch.equal(draw_step(0, config, split)[1][0], draw_step(1, config, split)[1][0])  # inner batches vary
