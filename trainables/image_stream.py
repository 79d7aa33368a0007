"""Stream the images of an ImageFolder tree (or its .tar/.tar.gz) in batches, without holding them.

`list_images` lists one part (train/ or test/) without decoding: class names, each image's class
and relative file name, in the dataset order of trainables/sources.py (classes sorted by folder
name, files by name within a class). `stream_images` decodes that part batch by batch into uint8
(B, 3, S, S) tensors, yielding each batch with the dataset indices of its images. A folder streams
in dataset order; a tarball streams in member order (members need not be in dataset order), each
image routed to its index by name, so the caller writes results by index. Either way, at most one
batch of images (encoded and decoded) is held at a time: ImageNet's 1.28M images stream in constant
memory. A stream can start after its first `start` images (for resuming); the stream order of a
source is fixed, so a resumed stream continues where the first one stopped.
"""
from __future__ import annotations

import bisect
import contextlib
import functools
import hashlib
import io
import itertools
import os
import tarfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .sources import _MEMBER, IMAGE_SUFFIXES, DatasetError, is_tarball

PARTS = ("train", "test")
# Errors of a damaged or truncated archive (gzip raises OSError/EOFError, zlib wrapped in ReadError).
_TAR_ERRORS = (tarfile.TarError, OSError, EOFError)


@dataclass(frozen=True, eq=False)
class ImageList:
    """One part of an image tree, in dataset order: `files[i]` ("train/cat/0001.jpg") has class
    `classes[class_ids[i]]`. `source` is the folder or tarball it was listed from; `stream_key`
    hashes the stream order (a tarball's member order), so a saved position is only reused on a
    source that streams in the same order."""
    source: Path
    part: str
    classes: tuple[str, ...]
    class_ids: torch.Tensor
    files: tuple[str, ...]
    stream_key: str

    def __len__(self) -> int:
        return len(self.files)

    @functools.cached_property
    def _class_starts(self) -> dict[str, tuple[int, int]]:
        starts = [0, *itertools.accumulate(torch.bincount(self.class_ids, minlength=len(self.classes)).tolist())]
        return {c: (starts[k], starts[k + 1]) for k, c in enumerate(self.classes)}

    def index(self, name: str) -> int | None:
        """Dataset index of the relative file name `name` ("train/cat/0001.jpg"), None if not listed.

        A binary search within the class's range (names of one class sort like their file names),
        so no name-to-index table is kept: on ImageNet that table would outweigh the listing."""
        cls = name.split("/")[1]
        if cls not in self._class_starts:
            return None
        lo, hi = self._class_starts[cls]
        i = bisect.bisect_left(self.files, name, lo, hi)
        return i if i < hi and self.files[i] == name else None


def _names_key(names) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _tar_members(tar: tarfile.TarFile, part: str) -> Iterator[tuple[tarfile.TarInfo, str, str]]:
    """(member, class, file name) of the part's images, in member order."""
    while (m := tar.next()) is not None:
        tar.members.clear()  # tarfile keeps every header it reads; 1.28M of them on ImageNet
        hit = _MEMBER.match(m.name)
        if m.isfile() and hit and hit.group(1) == part and _is_image(hit.group(3)):
            yield m, hit.group(2), hit.group(3)


def _list_tar(path: Path, part: str) -> list[tuple[str, str]]:
    try:
        with tarfile.open(path) as tar:
            return [(c, n) for _, c, n in _tar_members(tar, part)]
    except _TAR_ERRORS as e:
        raise DatasetError(f"{path}: not a readable tarball ({e}); re-download or repack it") from None


def _list_folder(path: Path, part: str) -> list[tuple[str, str]]:
    items = []
    with os.scandir(path / part) as folders:  # scandir: file types without a stat per image
        for d in folders:
            if d.is_dir():
                with os.scandir(d.path) as files:
                    items += [(d.name, f.name) for f in files if _is_image(f.name) and f.is_file()]
    return items


def list_images(root: str | Path, part: str = "train") -> ImageList:
    """List the images of `part` of an ImageFolder tree or its tarball, in dataset order (no decoding)."""
    if part not in PARTS:
        raise ValueError(f"part={part!r} is not an image-tree part; use one of {', '.join(PARTS)}")
    path = Path(root).expanduser()
    if is_tarball(path):
        items = _list_tar(path, part)
    elif (path / part).is_dir():
        items = _list_folder(path, part)
    else:
        raise DatasetError(f"{path}: neither a .tar/.tar.gz nor a folder with {part}/; pass an ImageFolder "
                           f"tree ({part}/<class>/<image>) or its tarball")
    if not items:
        raise DatasetError(f"{path}: no images under {part}/<class>/; lay the dataset out in the ImageFolder layout")
    tar_order = _names_key(f"{part}/{c}/{n}" for c, n in items) if is_tarball(path) else None  # member order
    classes = sorted({c for c, _ in items})
    ids = {c: i for i, c in enumerate(classes)}
    items.sort(key=lambda t: (ids[t[0]], t[1]))  # trainables/sources.py's order
    for a, b in zip(items, items[1:]):
        if a == b:
            raise DatasetError(f"{path}: {part}/{a[0]}/{a[1]} is stored twice; keep one copy")
    files = tuple(f"{part}/{c}/{n}" for c, n in items)
    return ImageList(path, part, tuple(classes), torch.tensor([ids[c] for c, _ in items], dtype=torch.int64),
                     files, tar_order or _names_key(files))


def _folder_items(images: ImageList, start: int) -> Iterator[tuple[int, Path, str]]:
    for i in range(start, len(images)):
        path = images.source / images.files[i]
        yield i, path, str(path)


def _tar_items(images: ImageList, start: int) -> Iterator[tuple[int, bytes, str]]:
    """(dataset index, encoded bytes, where) in member order, after the first `start` images."""
    where, seen = images.source, 0
    try:
        with tarfile.open(where, "r|*") as tar:
            for m, cls, name in _tar_members(tar, images.part):
                seen += 1
                if seen <= start:
                    continue  # resuming: these were streamed before (skipped undecoded)
                i = images.index(f"{images.part}/{cls}/{name}")
                if i is None:
                    raise DatasetError(f"{where}: {m.name} was not there when the tarball was listed; "
                                       "list it again (the file changed)")
                yield i, tar.extractfile(m).read(), f"{where}:{m.name}"
    except _TAR_ERRORS as e:
        raise DatasetError(f"{where}: not a readable tarball ({e}); re-download or repack it") from None
    if seen != len(images):
        raise DatasetError(f"{where}: holds {seen} {images.part} images, {len(images)} when listed; "
                           "list it again (the file changed)")


def _resize_crop(im, size: int, crop_fraction: float):
    """The standard evaluation transform (torchvision's Resize + CenterCrop): shorter side to
    round(size / crop_fraction), bilinear and antialiased, then the centre size x size square."""
    from PIL import Image
    w, h = im.size
    short = round(size / crop_fraction)
    if min(w, h) != short:
        im = im.resize((short, int(short * h / w)) if w <= h else (int(short * w / h), short),
                       Image.Resampling.BILINEAR)
        w, h = im.size
    left, top = int(round((w - size) / 2)), int(round((h - size) / 2))
    return im.crop((left, top, left + size, top + size))


def _load(data: bytes | Path, where: str, size: int | None, crop_fraction: float) -> np.ndarray:
    """One image as uint8 (3, H, W): native size when `size` is None, else resized and cropped."""
    from PIL import Image
    try:
        raw = data.read_bytes() if isinstance(data, Path) else data
        with Image.open(io.BytesIO(raw)) as im:
            im = im.convert("RGB")
            if size is not None:
                im = _resize_crop(im, size, crop_fraction)
            return np.asarray(im).transpose(2, 0, 1)
    except Exception as e:  # PIL and the filesystem raise many types for a bad file
        raise DatasetError(f"cannot decode image {where}: {e}; replace or remove that file") from None


def stream_images(images: ImageList, batch_size: int, image_size: int | None = None, start: int = 0,
                  crop_fraction: float = 0.875, threads: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (dataset indices (B,) int64, images uint8 (B, 3, S, S)) over `images`, batch_size at a
    time, after the first `start` images of the stream order. `image_size` None keeps the native
    size (every image must have it); `threads` decode a batch in parallel (PIL releases the GIL)."""
    if batch_size < 1 or not 0 <= start <= len(images):
        raise ValueError(f"batch_size={batch_size}, start={start}: need batch_size >= 1 and 0 <= start "
                         f"<= {len(images)} (the listed images)")
    items = _tar_items(images, start) if is_tarball(images.source) else _folder_items(images, start)
    shape = None
    with contextlib.closing(items), ThreadPoolExecutor(threads) as pool:
        while chunk := list(itertools.islice(items, batch_size)):
            arrays = list(pool.map(lambda t: _load(t[1], t[2], image_size, crop_fraction), chunk))
            shape = shape or arrays[0].shape
            for (_, _, where), a in zip(chunk, arrays):
                if a.shape != shape:
                    raise DatasetError(f"{where} is {a.shape[1]}x{a.shape[2]}, other images {shape[1]}x{shape[2]}; "
                                       "set image_size to resize and crop them to one size")
            yield torch.tensor([i for i, _, _ in chunk], dtype=torch.int64), torch.from_numpy(np.stack(arrays))

