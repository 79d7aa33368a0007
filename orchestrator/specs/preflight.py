"""Checks of a spec's inputs that need the data: run in the driver before Ray starts.

Loading the dataset here decodes it once into the cache that every trial on this machine then
reads (a bad image, a truncated tarball or mixed image sizes fail here, once, as one line), and
every task set is built against it (a table's rows, label values and image order; a checkpoint's
format), so no trial starts on input that cannot work.
"""
from __future__ import annotations

from trainables.data import ImageDataset, load_dataset
from trainables.sources import DatasetError
from trainables.tasks import TaskError, check_tasks

from orchestrator.specs.io import SpecError


def driver_dataset(dataset_spec, origin: str) -> ImageDataset:
    """The spec's dataset, decoded (or read from the cache); a SpecError if it cannot be had. Not kept:
    the driver holds no images while the sweep runs."""
    try:
        return load_dataset(dataset_spec.name, dataset_spec.root, dataset_spec.download, dataset_spec.image_size)
    except DatasetError as e:
        raise SpecError(f"{origin}: dataset: {e}") from None


def check_task_sets(sets, dataset: ImageDataset, origin: str) -> None:
    """SpecError naming the spec key and the file if any task of `sets` ((key, TaskSet) pairs) cannot
    be built on `dataset`."""
    for key, ts in sets:
        try:
            check_tasks(ts.kind, ts.indices, dataset, ts.source, ts.num_classes)
        except (TaskError, ValueError) as e:
            raise SpecError(f"{origin}: {key}: {e}") from None
