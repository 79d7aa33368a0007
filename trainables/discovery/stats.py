"""Progress statistics of a set of binary tasks on a fixed probe batch: balance and similarity."""
from __future__ import annotations

import torch


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
