"""Which ordering of a dataset's images a per-image file (task table, split table) indexes.

Two copies of CIFAR-10 hold the same images in different orders (torchvision's official order;
the JPEG tarball's order by class and file name), so a table made on one labels the wrong images
of the other. Files taskdisc writes carry the order's identity, a hash of the images' contents in
order, in their Parquet metadata; reading one against a dataset of another order is an error
naming both. Files without it (the authors' CSVs) are assumed to follow the dataset at hand, with
a one-line warning that says so.
"""
from __future__ import annotations

import hashlib
import warnings
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # in annotations only: torch is imported where used, so loading a spec needs none
    import torch

ORDER_KEY = b"taskdisc.image_order"
_cache: dict[int, tuple[weakref.ref, str]] = {}  # id(images) -> (the images, their order)


class OrderError(ValueError):
    """A file indexes the images of a dataset in another order; the message names both."""


def image_order(images: torch.Tensor) -> str:
    """Identity of a sequence of uint8 images (N, C, H, W): a hash of each image's content, in order.
    The same images in the same order give the same identity wherever they were decoded."""
    hit = _cache.get(id(images))
    if hit is not None and hit[0]() is images:
        return hit[1]
    h = hashlib.sha256()
    for im in images.cpu().contiguous().numpy():
        h.update(hashlib.sha256(im.tobytes()).digest())
    _cache[id(images)] = (weakref.ref(images), h.hexdigest()[:16])
    return _cache[id(images)][1]


def order_metadata(order: str | None) -> dict[bytes, bytes]:
    """Parquet schema metadata recording `order` (nothing when unknown)."""
    return {ORDER_KEY: order.encode()} if order else {}


def file_order(path: str | Path) -> str | None:
    """The image order a Parquet file records, or None (CSV, torch files, older Parquet)."""
    path = Path(path)
    if path.suffix != ".parquet":
        return None
    import pyarrow.parquet as pq
    meta = pq.read_schema(path).metadata or {}
    return meta[ORDER_KEY].decode() if ORDER_KEY in meta else None


_warned: set[str] = set()


def check_order(path: str | Path, images: torch.Tensor, dataset: str, what: str = "images") -> None:
    """OrderError if `path` records an order other than that of `images`; a warning (once per file)
    if it records none."""
    recorded, actual = file_order(path), image_order(images)
    if recorded is None:
        if str(path) not in _warned:
            _warned.add(str(path))
            warnings.warn(f"{path} records no image order: its rows are taken to follow {dataset}'s {what} as "
                          f"loaded here (order {actual}); the authors' files follow the official CIFAR-10 order",
                          stacklevel=2)
        return
    if recorded != actual:
        raise OrderError(f"{path} indexes {what} in order {recorded}, but {dataset} here has order {actual} "
                         "(another copy or ordering of the dataset); use the file made for this copy")
