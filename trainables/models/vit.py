"""The paper's ViT for CIFAR: patch 4, dim 256, depth 6, 6 heads, MLP dim 256, BatchNorm for LayerNorm.

As the authors' models/vit.py (lucidrains' ViT with batch_norm=True): token BatchNorm before each
attention and MLP block, the cls token and position embedding drawn from N(0, 1), and the head a
BatchNorm1d of the cls vector followed by the Linear; the penultimate features are the cls vector.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .width import scaled


class TokenBatchNorm(nn.Module):
    """BatchNorm over the feature axis of (B, N, D) tokens, statistics over batch and tokens."""

    def __init__(self, dim: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.transpose(1, 2)).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.out = nn.Linear(heads * dim_head, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, n, -1))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, mlp_dim: int):
        super().__init__()
        self.norm1, self.attn = TokenBatchNorm(dim), Attention(dim, heads, dim_head)
        self.norm2 = TokenBatchNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    def __init__(self, num_classes: int, width: float = 1.0, image_shape=(3, 32, 32), patch: int = 4,
                 dim: int = 256, depth: int = 6, heads: int = 6, dim_head: int = 64, mlp_dim: int = 256):
        super().__init__()
        c, h, w = image_shape
        if h % patch or w % patch:
            raise ValueError(f"ViT: image size {h}x{w} is not a multiple of the patch size {patch}")
        dim, dim_head, mlp_dim = scaled(dim, width), scaled(dim_head, width), scaled(mlp_dim, width)
        self.patchify = nn.Conv2d(c, dim, patch, patch)  # a linear map of each flattened patch
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, (h // patch) * (w // patch) + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, dim_head, mlp_dim) for _ in range(depth)])
        self.feature_dim = dim
        self.head = nn.Sequential(nn.BatchNorm1d(dim), nn.Linear(dim, num_classes))  # BatchNorm of the cls vector

    def features(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patchify(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1) + self.pos
        return self.blocks(tokens)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
