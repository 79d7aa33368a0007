"""Figures for a sweep: agreement-score histograms per task set; sample images of a split's parts."""
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


def split_samples_figure(samples: dict, path: Path, title: str) -> Path:
    """One row per (part, target class) cell of a split ("train/0", ..., uint8 (k, C, H, W) arrays),
    so a person sees what the train part's classes share that the test part's do not."""
    rows = sorted(samples, key=lambda k: (k.split("/")[0] != "train", k))
    cols = max(1, max(len(samples[k]) for k in rows))
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.1 * cols + 1.2, 1.2 * len(rows) + 0.5), dpi=100,
                             squeeze=False)
    for r, cell in enumerate(rows):
        part, c = cell.split("/")
        for j in range(cols):
            ax = axes[r][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(samples[cell]):
                image = samples[cell][j].transpose(1, 2, 0)
                ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray")
            else:
                ax.axis("off")
        axes[r][0].set_ylabel(f"{part}\ntarget {c}", rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
