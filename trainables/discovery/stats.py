"""Statistics of a set of binary tasks: balance and similarity (on a fixed probe batch, as discovery
progresses), and each task's closest reference task (e.g. the human-labelled real tasks)."""
from __future__ import annotations

import torch

from ..labels import REAL_TASKS


def task_stats(labels: torch.Tensor) -> dict[str, float]:
    """Statistics of hard labels (B, n_tasks) in {0, 1}.

    balance: mean over tasks of the majority-class fraction (0.5 = balanced, 1 = constant).
    similarity: mean over task pairs of max(eq, 1 - eq), eq the fraction of equal labels, so a
    task and its negation count as the same task (0.5 = independent-looking, 1 = identical).
    """
    y = labels.double()
    ones = y.mean(0)
    balance = torch.maximum(ones, 1 - ones)
    stats = {"discovery/balance": float(balance.mean()), "discovery/balance_max": float(balance.max())}
    n = y.shape[1]
    if n > 1:
        s = 2 * y - 1  # +-1 codes: mean(s_i * s_j) = 2 eq - 1
        eq = (s.T @ s / len(y) + 1) / 2
        i, j = torch.triu_indices(n, n, offset=1)
        sim = torch.maximum(eq[i, j], 1 - eq[i, j])
        stats.update({"discovery/similarity": float(sim.mean()), "discovery/similarity_max": float(sim.max())})
    return stats


def closest_tasks(labels: torch.Tensor, references: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each task of `labels` (N, n_tasks), the reference task of `references` (N, n_refs) whose
    labels it matches best, and how well: max(eq, 1 - eq), eq the fraction of equal labels (a task
    and its negation are the same task). Returns (index (n_tasks,), agreement (n_tasks,))."""
    s, r = 2 * labels.double() - 1, 2 * references.double() - 1
    eq = (s.T @ r / len(s) + 1) / 2
    best = torch.maximum(eq, 1 - eq)
    agreement, index = best.max(dim=1)
    return index, agreement


def closest_real_tasks(labels: torch.Tensor, train_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`closest_tasks` of training-image labels (N, n_tasks) among the 126 real (5-vs-5 class) tasks of
    a 10-class dataset with classes `train_y`: how close each task is to a human concept. None for
    other datasets."""
    if len(train_y.unique()) != 10:
        return None
    real = torch.stack([torch.isin(train_y, torch.tensor(p)) for p in REAL_TASKS], dim=1)
    return closest_tasks(labels.cpu(), real)
