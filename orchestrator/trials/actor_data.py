"""The images a trial actor keeps on its device across trials (Tune reuses actors).

A sweep of hundreds of tasks over one dataset then decodes and uploads the images once per
actor, not once per trial. Plain Python: the cache is a dict the actor owns.
"""
from __future__ import annotations

from trainables.data import device_images
from trainables.data import DeviceImages, ImageDataset, load_dataset

LOADS = "loads"


def actor_images(cache: dict, dataset_spec, device: str, channels_last: bool = False
                 ) -> tuple[ImageDataset, DeviceImages, DeviceImages]:
    """(dataset, train images, test images) for `dataset_spec` on `device`, loading only on a miss.

    Only the latest dataset is kept: an actor switching datasets frees the previous one.
    """
    key = (dataset_spec, device, channels_last)
    if key not in cache:
        dataset = load_dataset(dataset_spec.name, dataset_spec.root, dataset_spec.download, dataset_spec.image_size)
        loads = cache.get(LOADS, 0) + 1
        cache.clear()
        cache[key] = (dataset, *device_images(dataset, device, channels_last))
        cache[LOADS] = loads
    return cache[key]
