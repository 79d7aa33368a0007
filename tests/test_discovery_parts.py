"""Encoder, hyperplanes, losses, task statistics and config checks of task discovery."""
from __future__ import annotations

import math

import pytest
import torch

from discovery_fixtures import TINY_SHAPE, tiny_config
from trainables.config import ConfigError
from trainables.discovery import DiscoveryConfig, build_encoder, orthogonal_hyperplanes, uniformity_loss
from trainables.discovery.encoder import embed, hard_labels, soft_labels
from trainables.discovery.losses import agreement_loss
from trainables.discovery.stats import task_stats


def test_hyperplanes_are_orthonormal_and_seeded():
    w = orthogonal_hyperplanes(32, 20, seed=3)
    assert w.shape == (20, 32)
    assert torch.allclose(w @ w.T, torch.eye(20, dtype=w.dtype), atol=1e-12)
    assert torch.equal(w, orthogonal_hyperplanes(32, 20, seed=3))
    assert not torch.equal(w, orthogonal_hyperplanes(32, 20, seed=4))
    assert torch.equal(orthogonal_hyperplanes(32, 32, seed=3)[:20], w)  # the first rows of one matrix


def test_uniformity_loss_known_values():
    two = torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=torch.float64)  # orthogonal: |z - z'|^2 = 2
    assert float(uniformity_loss(two, t=2)) == pytest.approx(-4.0, abs=1e-12)
    cross = torch.tensor([[1.0, 0], [-2, 0], [0, 1], [0, -5]], dtype=torch.float64)
    # 2 antipodal pairs (|z - z'|^2 = 4) and 4 orthogonal pairs (2)
    expected = math.log((2 * math.exp(-8) + 4 * math.exp(-4)) / 6)
    assert float(uniformity_loss(cross, t=2)) == pytest.approx(expected, abs=1e-12)
    same = torch.ones(5, 3, dtype=torch.float64)
    assert float(uniformity_loss(same)) == pytest.approx(0.0, abs=1e-12)


def test_agreement_loss_is_symmetric_and_smallest_for_confident_agreement():
    a, b = torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    assert float(agreement_loss(a, b)) == pytest.approx(float(agreement_loss(b, a)), abs=1e-12)
    sure = torch.tensor([[20.0, -20.0]] * 4, dtype=torch.float64)
    assert float(agreement_loss(sure, sure)) < 1e-6
    assert float(agreement_loss(sure, -sure)) > 10


def test_soft_and_hard_labels_agree_on_the_positive_side():
    e = torch.randn(64, 4, dtype=torch.float64)
    w = orthogonal_hyperplanes(4, 4, 0)
    hard = hard_labels(e, w)
    for i in range(4):
        soft = soft_labels(e, w[i], temp=5.0)
        assert torch.allclose(soft.sum(1), torch.ones(64, dtype=torch.float64))
        assert torch.equal(soft.argmax(1), hard[:, i])
        assert torch.equal(hard[:, i], (e @ w[i] > 0).long())


def test_encoder_shape_fixed_bias_and_side_effect_free_embedding():
    config = tiny_config()
    encoder = build_encoder(config, TINY_SHAPE).double()
    assert "bn.bias" not in encoder.trainable() and "proj.weight" in encoder.trainable()
    assert encoder.proj.bias is None and torch.all(encoder.bn.bias == 0)
    x = torch.randn(10, *TINY_SHAPE, dtype=torch.float64)
    before = {n: b.clone() for n, b in encoder.named_buffers()}
    e = embed(encoder, encoder.trainable(), x)
    assert e.shape == (10, config.h_dim)
    assert torch.allclose(e.mean(0), torch.zeros(config.h_dim, dtype=torch.float64), atol=1e-10)
    for n, b in encoder.named_buffers():
        assert torch.equal(b, before[n]), f"embed changed buffer {n}"
    again = build_encoder(config, TINY_SHAPE).double()
    assert all(torch.equal(p, q) for p, q in zip(encoder.parameters(), again.parameters()))


def test_task_stats_balance_and_similarity():
    a = torch.tensor([0, 0, 1, 1])
    labels = torch.stack([a, 1 - a, torch.tensor([0, 1, 0, 1])], dim=1)
    stats = task_stats(labels)
    assert stats["discovery/balance"] == pytest.approx(0.5)
    # pairs: (a, not a) -> 1 (a negation is the same task); (a, c) and (not a, c) -> 0.5
    assert stats["discovery/similarity"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert stats["discovery/similarity_max"] == pytest.approx(1.0)
    constant = task_stats(torch.zeros(10, 2, dtype=torch.long))
    assert constant["discovery/balance"] == 1.0


@pytest.mark.parametrize("bad", [dict(n_linear_tasks=33), dict(data_mode="both"), dict(inner_batch_size=511),
                                 dict(checkpointing="yes"), dict(task_temp=0), dict(arch="lenet")])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        DiscoveryConfig(**bad)


def test_checkpointing_follows_the_arch_on_auto():
    assert not DiscoveryConfig(arch="mlp").checkpoints()
    assert DiscoveryConfig(arch="resnet18").checkpoints()
    assert DiscoveryConfig(arch="mlp", pair_arch="vit").checkpoints()
    assert DiscoveryConfig(arch="resnet18", checkpointing="off").checkpoints() is False
