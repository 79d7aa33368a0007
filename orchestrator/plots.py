"""Figures for a sweep: one histogram of agreement scores per task set."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes or CI
import matplotlib.pyplot as plt  # noqa: E402


def agreement_histograms(rows: list[dict], out_dir: Path) -> list[Path]:
    """Write `as_hist_<group>.png` for every task set in `rows`; returns the paths."""
    by_group: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        by_group[r["group"]].append(r["agreement"])
    paths = []
    for group, values in sorted(by_group.items()):
        fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
        ax.hist(values, bins=min(30, max(5, len(values) // 2)), range=(0.5, 1.0), color="tab:blue")
        ax.set(xlabel="agreement score", ylabel="trials",
               title=f"{group}: n={len(values)}, mean={sum(values) / len(values):.3f}")
        fig.tight_layout()
        path = out_dir / f"as_hist_{group}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
