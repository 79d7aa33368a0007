"""Checks of a spec's inputs that need the data: run in the driver before Ray starts.

Loading the dataset here decodes it once into the cache that every trial on this machine then
reads (a bad image, a truncated tarball or mixed image sizes fail here, once, as one line), and
every task set is built against it (a table's rows, label values and image order; a checkpoint's
format), so no trial starts on input that cannot work.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

from trainables.data import ImageDataset, load_dataset
from trainables.sources import DatasetError
from trainables.labels import TaskError
from trainables.task_table import file_version
from trainables.tasks import check_tasks

from orchestrator.specs.io import SpecError


def driver_dataset(dataset_spec, origin: str) -> ImageDataset:
    """The spec's dataset, decoded (or read from the cache); a SpecError if it cannot be had. Loaded once per
    process: the checks before a sweep, its end (task pictures) and its follow-up sweeps share it."""
    root = Path(dataset_spec.root) if dataset_spec.root else None
    try:  # a file replaced in place (same path) is loaded anew
        return _loaded(dataset_spec, file_version(root) if root and root.exists() else None)
    except DatasetError as e:
        raise SpecError(f"{origin}: dataset: {e}") from None


@functools.lru_cache(maxsize=1)  # one dataset at a time: a driver switching datasets frees the last
def _loaded(dataset_spec, version: tuple | None) -> ImageDataset:
    return load_dataset(dataset_spec.name, dataset_spec.root, dataset_spec.download, dataset_spec.image_size)


def check_task_sets(sets, dataset: ImageDataset, origin: str) -> None:
    """SpecError naming the spec key and the file if any task of `sets` ((key, TaskSet) pairs) cannot
    be built on `dataset`."""
    for key, ts in sets:
        try:
            check_tasks(ts.kind, ts.indices, dataset, ts.source, ts.num_classes)
        except (TaskError, ValueError) as e:
            raise SpecError(f"{origin}: {key}: {e}") from None


def check_spec(spec, origin: str):
    """Everything checkable before a sweep starts: where it writes, then its inputs (the kind's `preflight`)."""
    check_writable(Path(spec.sweep_dir), "output_dir", origin)
    return spec.preflight(origin)


def check_writable(folder: Path, key: str, origin: str) -> None:
    """SpecError unless `folder` can be created and written (its nearest existing parent is a writable folder)."""
    from orchestrator.faults import nearest_existing
    existing = nearest_existing(folder)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        why = "not a folder" if not existing.is_dir() else "not writable (a read-only filesystem, or permissions)"
        raise SpecError(f"{origin}: {key}: {existing} is {why}, so {folder} cannot be written; "
                        f"choose another {key} (--set {key}=...)")
