"""Task kinds: each maps (dataset, index) to a labelling of every image of the dataset.

| kind     | labels |
| real     | the 126 binary 5-vs-5 CIFAR-10 class bipartitions, `combinations(range(10), 5)[index]` |
| real10   | the dataset's own class labels (index 0 only) |
| random   | uniform labels from `torch.Generator().manual_seed(index)` |
| table    | column `index` of a CSV/Parquet file, one row per training image |
| discovered | task (hyperplane) `index` of a discovery run: encoder checkpoint (.pt) or task table |
| classes  | 1 where the image's class is in row `index` of a class-set file (.npy or text: class ids per row) |

Later kinds join through `register_task_kind`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .data import ImageDataset
from .labels import REAL_TASKS, TaskError, TaskLabels
from .task_table import check_table_order, read_table

def _check_index(kind: str, index: int, n: int) -> None:
    if not 0 <= index < n:
        raise TaskError(f"{kind} task index {index} is out of range: use 0..{n - 1}")


def real_task(dataset: ImageDataset, index: int, *, source=None, num_classes: int = 2) -> TaskLabels:
    import torch
    _check_index("real", index, len(REAL_TASKS))
    if len(dataset.classes) != 10:
        raise TaskError(f"real tasks need a 10-class dataset, {dataset.name} has {len(dataset.classes)}")
    positive = torch.tensor(REAL_TASKS[index])
    return TaskLabels(f"real-{index}", torch.isin(dataset.train_y, positive).long(),
                      torch.isin(dataset.test_y, positive).long(), 2)


def real10_task(dataset: ImageDataset, index: int, *, source=None, num_classes: int = 2) -> TaskLabels:
    _check_index("real10", index, 1)
    return TaskLabels("real10-0", dataset.train_y.long(), dataset.test_y.long(), len(dataset.classes))


def random_task(dataset: ImageDataset, index: int, *, source=None, num_classes: int = 2) -> TaskLabels:
    import torch
    if index < 0:
        raise TaskError(f"random task index {index} is out of range: use 0 or more")
    g = torch.Generator().manual_seed(index)
    train = torch.randint(num_classes, (len(dataset.train_y),), generator=g)
    test = torch.randint(num_classes, (len(dataset.test_y),), generator=g)
    return TaskLabels(f"random-{index}", train, test, num_classes)


def table_task(dataset: ImageDataset, index: int, *, source: str | None = None,
               num_classes: int = 2) -> TaskLabels:
    import torch
    if not source:
        raise TaskError("table tasks need a source: the path of a CSV or Parquet task table")
    names, values = read_table(source)
    _check_index(f"table ({source})", index, len(names))
    if len(values) != len(dataset.train_y):
        raise TaskError(f"task table {source} has {len(values)} rows but {dataset.name} has "
                        f"{len(dataset.train_y)} training images; give one row per training image")
    col = values[:, index]
    if col.min() < 0 or col.max() >= num_classes:
        raise TaskError(f"task table {source}: column {names[index]!r} has labels outside 0..{num_classes - 1}; "
                        "fix the labels or raise num_classes")
    check_table_order(source, dataset.train_x, dataset.name, "training images")
    return TaskLabels(f"table-{names[index]}", torch.from_numpy(col.astype(np.int64)), None, num_classes)


def read_class_sets(path: str | Path) -> list[list[int]]:
    """Rows of positive class ids: an integer .npy array (rows = tasks, e.g. the authors'
    tiny_imagenet_binary_tasks.npy) or a text file of comma- or space-separated ids per line."""
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"class-set file {path} does not exist; pass a .npy or text file of class ids per row")
    try:
        if path.suffix == ".npy":
            rows = np.load(path, allow_pickle=False)
            rows = rows.reshape(1, -1) if rows.ndim == 1 else rows
            if rows.ndim != 2 or rows.dtype.kind not in "iu":
                raise ValueError(f"a {rows.ndim}-D {rows.dtype} array")
            return rows.tolist()
        return [[int(v) for v in line.replace(",", " ").split()] for line in path.read_text().splitlines()
                if line.strip()]
    except (ValueError, OSError) as e:
        raise TaskError(f"class-set file {path} is unreadable ({e}); give an integer .npy array or a text file "
                        "of class ids, one task per row") from None


def classes_task(dataset: ImageDataset, index: int, *, source: str | None = None,
                 num_classes: int = 2) -> TaskLabels:
    import torch
    if not source:
        raise TaskError("classes tasks need a source: a .npy or text file of positive class ids, one task per row")
    rows = read_class_sets(source)
    _check_index(f"classes ({source})", index, len(rows))
    positive = rows[index]
    n = len(dataset.classes)
    if not positive or min(positive) < 0 or max(positive) >= n or len(set(positive)) != len(positive):
        raise TaskError(f"class-set file {source}: row {index} must list distinct class ids in 0..{n - 1} "
                        f"({dataset.name} has {n} classes); fix that row")
    positive_t = torch.tensor(positive)
    return TaskLabels(f"classes-{index}", torch.isin(dataset.train_y, positive_t).long(),
                      torch.isin(dataset.test_y, positive_t).long(), 2)


def discovered_task(dataset: ImageDataset, index: int, *, source: str | None = None,
                    num_classes: int = 2) -> TaskLabels:
    # Imported when used: discovery builds on the AS protocol and the task table, not on this registry.
    from .discovery.export import discovered_task as from_discovery
    return from_discovery(dataset, index, source=source, num_classes=num_classes)


TASK_KINDS: dict[str, Callable[..., TaskLabels]] = {
    "real": real_task,
    "real10": real10_task,
    "random": random_task,
    "table": table_task,
    "discovered": discovered_task,
    "classes": classes_task,
}


def _discovered_count(source: str | None) -> int | None:
    from .discovery.export import discovered_count
    return discovered_count(source) if source else None


# How many tasks a kind holds (for a source), so a sweep can reject an index before it starts;
# None where any non-negative index is valid (random) or the count cannot be known.
TASK_COUNTS: dict[str, Callable[[str | None], int | None]] = {
    "real": lambda source: len(REAL_TASKS),
    "real10": lambda source: 1,
    "table": lambda source: len(read_table(source)[0]) if source else None,
    "discovered": _discovered_count,
    "classes": lambda source: len(read_class_sets(source)) if source else None,
}


def register_task_kind(name: str, kind: Callable[..., TaskLabels],
                       count: Callable[[str | None], int | None] | None = None) -> None:
    TASK_KINDS[name] = kind
    if count is not None:
        TASK_COUNTS[name] = count


def task_count(kind: str, source: str | None = None) -> int | None:
    """Number of tasks of `kind` from `source`, or None if unbounded or unknown."""
    return TASK_COUNTS.get(kind, lambda s: None)(source)


# Kinds whose every task reads its own labels from a file (a table column, a class-set row): a check
# before a sweep builds each requested index. Elsewhere validity does not depend on the index (ranges
# are checked when the spec loads), so the first index stands for all.
TASK_CHECK_EACH: dict[str, Callable[[str | None], bool]] = {
    "table": lambda source: True,
    "classes": lambda source: True,
    "discovered": lambda source: not str(source).endswith(".pt"),
}


def check_tasks(kind: str, indices, dataset: ImageDataset, source: str | None = None, num_classes: int = 2) -> None:
    """TaskError (naming the file) if any task of `indices` cannot be built on `dataset`."""
    each = TASK_CHECK_EACH.get(kind, lambda s: False)(source)
    for index in (indices if each else list(indices)[:1]):
        make_task(kind, index, dataset, source, num_classes)


def make_task(kind: str, index: int, dataset: ImageDataset, source: str | None = None,
              num_classes: int = 2) -> TaskLabels:
    """Labels of task `index` of `kind` on `dataset`; an unknown kind lists the valid ones."""
    if kind not in TASK_KINDS:
        raise TaskError(f"unknown task kind {kind!r}: choose one of {', '.join(sorted(TASK_KINDS))}")
    return TASK_KINDS[kind](dataset, index, source=source, num_classes=num_classes)
