"""The losses of task discovery: inner soft cross-entropy, outer agreement and uniformity."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _wide(x: torch.Tensor) -> torch.Tensor:
    """bf16 logits to fp32 before softmax (too coarse for log-probabilities); fp32/fp64 as they are."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_k target_k log softmax(logits)_k."""
    return -(target * F.log_softmax(_wide(logits), dim=1)).sum(1).mean()


def agreement_loss(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy between two networks' predicted distributions,
    (H(p_a, p_b) + H(p_b, p_a)) / 2; both sides carry gradient, as both networks depend on the task."""
    return 0.5 * (soft_cross_entropy(logits_b, F.softmax(_wide(logits_a), 1))
                  + soft_cross_entropy(logits_a, F.softmax(_wide(logits_b), 1)))


def uniformity_loss(e: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Wang & Isola (2020): log mean over distinct pairs of exp(-t |z - z'|^2), z = e / |e|.

    Computed as logsumexp over the upper triangle minus log(#pairs), stable for any t."""
    z = F.normalize(e, dim=1)
    i, j = torch.triu_indices(len(z), len(z), offset=1, device=z.device)
    # |z - z'|^2 = 2 - 2 z.z' on the unit sphere; unlike pdist, no sqrt whose gradient blows up at 0
    sq = 2 - 2 * (z @ z.T)[i, j]
    return torch.logsumexp(-t * sq, dim=0) - math.log(len(sq))
