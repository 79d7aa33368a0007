"""The paper's MLP: 3072-1024-512-256-64-K, ReLU then BatchNorm after the first three layers."""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .width import scaled


class MLP(nn.Module):
    def __init__(self, num_classes: int, width: float = 1.0, image_shape=(3, 32, 32)):
        super().__init__()
        dims = [math.prod(image_shape)] + [scaled(c, width) for c in (1024, 512, 256)]
        layers: list[nn.Module] = [nn.Flatten()]
        for d_in, d_out in zip(dims, dims[1:]):
            layers += [nn.Linear(d_in, d_out), nn.ReLU(inplace=True), nn.BatchNorm1d(d_out)]
        self.feature_dim = scaled(64, width)
        layers += [nn.Linear(dims[-1], self.feature_dim), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
