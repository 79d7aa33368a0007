"""Pictures of tasks: for a task of any kind, a row of images per label it gives (driver side)."""
from __future__ import annotations

from pathlib import Path

import torch

from trainables.data import ImageDataset
from trainables.tasks import make_task

from orchestrator.results.plots import task_figure

PER_LABEL = 10  # images shown per label


def draw_task(dataset: ImageDataset, kind: str, index: int, path: Path, source: str | None = None,
              num_classes: int = 2, seed: int = 0, title: str | None = None) -> Path:
    """`path`: PER_LABEL seeded-random training images of each label of task `kind`-`index`."""
    labels = make_task(kind, index, dataset, source, num_classes)
    g = torch.Generator().manual_seed(seed)
    images = {}
    for c in range(labels.num_classes):
        idx = torch.nonzero(labels.train == c).flatten()
        pick = idx[torch.randperm(len(idx), generator=g)[:PER_LABEL]].sort().values
        images[c] = dataset.train_x[pick].numpy()
    share = ", ".join(f"{c}: {float((labels.train == c).float().mean()):.0%}" for c in range(labels.num_classes))
    return task_figure(images, path, title or f"{labels.name} ({share} of the training images)")


def sweep_task_pictures(dataset: ImageDataset, rows: list[dict], out_dir: Path) -> list[Path]:
    """The highest- and the lowest-AS task of each task set of a sweep: what high and low AS look like."""
    paths = []
    for group in sorted({r["group"] for r in rows}):
        rs = sorted((r for r in rows if r["group"] == group), key=lambda r: r["agreement"])
        for which, r in (("top", rs[-1]), ("bottom", rs[0])) if len(rs) > 1 else (("top", rs[-1]),):
            paths.append(draw_task(dataset, r["kind"], r["index"], out_dir / f"task_{group}_{which}.png",
                                   r["source"], r.get("num_classes", 2),
                                   title=f"{group} {which} task {r['index']}: AS {r['agreement']:.3f}"))
    return paths
