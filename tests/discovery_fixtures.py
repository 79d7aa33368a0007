"""Tiny synthetic data and configs shared by the discovery tests (CPU, seconds)."""
from __future__ import annotations

import dataclasses

import torch

from trainables.data import ImageDataset
from trainables.discovery import DiscoveryConfig, build_encoder
from trainables.discovery.unroll import InnerPair, MetaBatch

TINY_SHAPE = (3, 4, 4)


def synthetic_dataset(n_train: int = 600, n_test: int = 100, classes: int = 4, size: int = 8,
                      seed: int = 0) -> ImageDataset:
    """Class prototypes plus noise, so some labellings are learnable and others are not."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.rand(classes, 3, size, size, generator=g) * 255

    def make(n):
        y = torch.randint(classes, (n,), generator=g)
        x = (protos[y] * 0.6 + torch.rand(n, 3, size, size, generator=g) * 255 * 0.4).round().to(torch.uint8)
        return x, y

    (tx, ty), (vx, vy) = make(n_train), make(n_test)
    return ImageDataset("synthetic", tx, ty, vx, vy, tuple(str(c) for c in range(classes)), (0.5,) * 3, (0.25,) * 3)


def tiny_config(**overrides) -> DiscoveryConfig:
    """fp64, a 48-32-16-8-2 MLP encoder and pair, 3 inner steps on 16 images."""
    base = dict(arch="mlp", width=1 / 32, h_dim=4, n_linear_tasks=4, nsteps=3, inner_batch_size=16,
                outer_batch_size=12, inner_lr=0.5, uniformity_coef=1.0, precision="fp64")
    return DiscoveryConfig(**{**base, **overrides})


def tiny_problem(config: DiscoveryConfig, seed: int = 0):
    """(encoder, inner pair, meta-batch) on Gaussian images of TINY_SHAPE, all fp64."""
    encoder = build_encoder(config, TINY_SHAPE).double()
    pair = InnerPair(config.inner_arch, config.inner_width, TINY_SHAPE, config.pair_seed, "cpu", torch.float64)
    g = torch.Generator().manual_seed(seed)
    images = [torch.randn(config.inner_batch_size, *TINY_SHAPE, generator=g, dtype=torch.float64)
              for _ in range(config.nsteps)]
    outer = torch.randn(config.outer_batch_size, *TINY_SHAPE, generator=g, dtype=torch.float64)
    return encoder, pair, MetaBatch(tuple(images), outer)


def replace(config: DiscoveryConfig, **changes) -> DiscoveryConfig:
    return dataclasses.replace(config, **changes)
