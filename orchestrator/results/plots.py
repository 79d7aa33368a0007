"""Figures for a sweep: agreement scores per task set and against accuracy; sample images of a split's parts."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only; no display on cluster nodes or CI
import matplotlib.pyplot as plt  # noqa: E402


def agreement_figures(rows: list[dict], out_dir: Path) -> list[Path]:
    """The sweep's pictures: AS per task set, AS against epoch and AS against test accuracy."""
    return [agreement_by_set(rows, out_dir / "as_by_task_set.png"),
            agreement_by_epoch(rows, out_dir / "as_by_epoch.png"),
            agreement_vs_test_accuracy(rows, out_dir / "as_vs_test_acc.png")]


def _by_group(rows: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r["group"]].append(r)
    return dict(sorted(groups.items()))


def agreement_by_set(rows: list[dict], path: Path) -> Path:
    """Every trial's AS as a point, task sets side by side, each set's mean as a bar across it."""
    groups = _by_group(rows)
    fig, ax = plt.subplots(figsize=(1.3 * len(groups) + 2.5, 3.6), dpi=100)
    rng = np.random.default_rng(0)  # horizontal jitter only, so points of equal AS stay visible
    for x, (group, rs) in enumerate(groups.items()):
        a = np.array([r["agreement"] for r in rs])
        ax.scatter(x + rng.uniform(-0.18, 0.18, len(a)), a, s=14, alpha=0.7, color=f"C{x}")
        ax.hlines(a.mean(), x - 0.3, x + 0.3, color="black", lw=2)
        ax.annotate(f"{a.mean():.3f}", (x + 0.32, a.mean()), va="center", fontsize=8)
    ax.set_xticks(range(len(groups)), [f"{g}\n(n={len(rs)})" for g, rs in groups.items()], fontsize=8)
    ax.set(ylabel="agreement score", title="AS per task set (points: trials; bars: means)")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def agreement_by_epoch(rows: list[dict], path: Path) -> Path:
    """Mean held-out AS after each epoch per task set, shaded one standard deviation either side.
    A pair that stops early counts up to its last epoch only."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=100)
    for x, (group, rs) in enumerate(_by_group(rows).items()):
        curves = [c for c in (r.get("agreement_by_epoch") or [] for r in rs) if c]
        if not curves:
            continue
        by_epoch = [np.array([c[e] for c in curves if len(c) > e]) for e in range(max(map(len, curves)))]
        mean, std = np.array([a.mean() for a in by_epoch]), np.array([a.std() for a in by_epoch])
        epochs = np.arange(1, len(by_epoch) + 1)
        ax.plot(epochs, mean, color=f"C{x}", marker="o", ms=3, label=f"{group} (n={len(curves)})")
        ax.fill_between(epochs, mean - std, mean + std, color=f"C{x}", alpha=0.2)
    ax.set(xlabel="epoch", ylabel="agreement score", title="AS during training (mean ± std over trials)")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # rows recorded before curves were kept have none
        ax.legend(fontsize=7)
    return _save(fig, path)


def agreement_vs_test_accuracy(rows: list[dict], path: Path) -> Path:
    """AS against the pair's mean held-out accuracy per trial, with the diagonal: two networks agree
    about as often as they are right on tasks they learn (Jiang et al. 2022), not on random labels."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2), dpi=100)
    for x, (group, rs) in enumerate(_by_group(rows).items()):
        acc = [(r["holdout_acc_0"] + r["holdout_acc_1"]) / 2 for r in rs]
        ax.scatter(acc, [r["agreement"] for r in rs], s=14, alpha=0.7, color=f"C{x}", label=group)
    ax.plot([0, 1], [0, 1], color="gray", lw=1, ls="--", label="AS = accuracy")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean held-out accuracy of the pair", ylabel="agreement score",
           title="AS against accuracy")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def task_figure(images: dict[int, np.ndarray], path: Path, title: str) -> Path:
    """One row per label of a task (uint8 (k, C, H, W) images it gives that label), as the authors'
    notebook draws discovered tasks: what the images of a row share is what the task means."""
    return image_rows_figure([(f"label {c}", images[c]) for c in sorted(images)], path, title)


def image_rows_figure(rows: list[tuple[str, np.ndarray]], path: Path, title: str) -> Path:
    """One row of images per (row label, uint8 (k, C, H, W) images), blank where a row is short."""
    cols = max(1, max(len(images) for _, images in rows))
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.1 * cols + 1.2, 1.2 * len(rows) + 0.5), dpi=100,
                             squeeze=False)
    for r, (label, images) in enumerate(rows):
        for j in range(cols):
            ax = axes[r][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(images):
                image = images[j].transpose(1, 2, 0)
                ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray")
            else:
                ax.axis("off")
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def split_samples_figure(samples: dict, path: Path, title: str) -> Path:
    """One row per (part, target class) cell of a split ("train/0", ..., uint8 (k, C, H, W) arrays),
    so a person sees what the train part's classes share that the test part's do not."""
    cells = sorted(samples, key=lambda k: (k.split("/")[0] != "train", k))
    return image_rows_figure([(cell.replace("/", "\ntarget "), samples[cell]) for cell in cells], path, title)
