"""TinyImageNet (200 classes, 64x64) read from its original layout: a folder, the distributed .zip or a .tar.gz.

    wnids.txt                          200 wnids, one per line: the class order (class index = line)
    train/<wnid>/images/*.JPEG         500 per class
    val/images/*.JPEG                  50 per class, labelled by
    val/val_annotations.txt            file name <TAB> wnid <TAB> 4 box ints, one image per line

The val split is the dataset's test split (TinyImageNet's test/ is unlabelled and ignored). Indices
follow (class index, file name), train and val separately, so they do not depend on how a copy
was unpacked. Images are resized once, when decoded into the cache.
"""
from __future__ import annotations

import functools
import os
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from .sources import IMAGE_SUFFIXES, TAR_SUFFIXES, Arrays, DatasetError, cache_dir, content_key, open_image

TINY_IMAGENET_ENV = "TASKDISC_TINY_IMAGENET"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
DEFAULT_IMAGE_SIZE = 32  # the authors resize TinyImageNet to CIFAR's 32x32
ANNOTATIONS = "val/val_annotations.txt"
HOW = (f"set dataset.root or ${TINY_IMAGENET_ENV} to TinyImageNet in its original layout: the tiny-imagenet-200 "
       f"folder, tiny-imagenet-200.zip ({URL}) or a .tar.gz of the folder")


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith((".zip", *TAR_SUFFIXES))


def tiny_imagenet_source(root: str | None) -> Path:
    """The archive, or the folder holding wnids.txt, at `root`, else $TASKDISC_TINY_IMAGENET, else the cache's
    tiny-imagenet-200 folder or .zip. A cheap check (no decoding); DatasetError saying where it looked."""
    given = root or os.environ.get(TINY_IMAGENET_ENV)
    candidates = ([Path(given).expanduser()] if given
                  else [cache_dir() / "tiny-imagenet-200", cache_dir() / "tiny-imagenet-200.zip"])
    for path in candidates:
        if is_archive(path):
            return path
        for folder in (path, path / "tiny-imagenet-200"):  # the unpacked zip, or the folder it was unpacked in
            if (folder / "wnids.txt").is_file():
                for need in ("train", ANNOTATIONS):
                    if not (folder / need).exists():
                        raise DatasetError(f"tiny-imagenet: {folder} has no {need} (TinyImageNet's "
                                           f"{'labelled val split' if need == ANNOTATIONS else 'training images'}); "
                                           f"unpack tiny-imagenet-200.zip again or {HOW}")
                return folder
    looked = " or ".join(str(p) for p in candidates)
    raise DatasetError(f"tiny-imagenet: no TinyImageNet at {looked} (looked for wnids.txt, train/ and val/ there "
                       f"or in tiny-imagenet-200/, or a .zip/.tar.gz); {HOW}")


def tiny_imagenet_identity(root: str | None = None, download: bool = False, image_size: int | None = None) -> str:
    """The data's identity: the copy's content and the size it is resized to (nothing is downloaded)."""
    return f"tiny-imagenet:{content_key(tiny_imagenet_source(root))[:16]}:{image_size or DEFAULT_IMAGE_SIZE}px"


def read_tiny_imagenet(path: Path, image_size: int) -> Arrays:
    """Decode TinyImageNet at `path` (folder, .zip or .tar(.gz)), resized to image_size x image_size."""
    where = str(path)
    if path.is_dir():
        files = {str(p.relative_to(path)): p.read_bytes for p in path.rglob("*") if p.is_file()}
        return _read_tree(files, image_size, where)
    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:  # members are read lazily, while the zip is open
                return _read_tree({n: functools.partial(zf.read, n) for n in zf.namelist() if not n.endswith("/")},
                                  image_size, where)
        with tarfile.open(path) as tar:  # a compressed tar reads forward only: keep the members' bytes
            blobs = {m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar if m.isfile()}
        return _read_tree({n: functools.partial(blobs.get, n) for n in blobs}, image_size, where)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, OSError) as e:
        raise DatasetError(f"{where}: not a readable archive ({e}); re-download tiny-imagenet-200.zip "
                           "or repack the folder") from None


def _read_tree(files: dict[str, Callable[[], bytes]], image_size: int, where: str) -> Arrays:
    """TinyImageNet from its files (relative name -> reader), wherever wnids.txt sits in the tree."""
    found = sorted((n for n in files if n == "wnids.txt" or n.endswith("/wnids.txt")), key=len)
    if not found:
        raise DatasetError(f"{where}: no wnids.txt (TinyImageNet's class list); {HOW}")
    prefix = found[0][: -len("wnids.txt")]
    files = {n[len(prefix):]: read for n, read in files.items() if n.startswith(prefix)}
    wnids = _wnids(files["wnids.txt"](), where)
    label = {w: i for i, w in enumerate(wnids)}
    if ANNOTATIONS not in files:
        raise DatasetError(f"{where}: no {ANNOTATIONS} (TinyImageNet's val labels); unpack tiny-imagenet-200.zip "
                           f"again or {HOW}")
    val_label = _annotations(files[ANNOTATIONS](), label, where)
    train, val = [], []
    for name in files:
        parts = name.split("/")
        if not name.lower().endswith(IMAGE_SUFFIXES):
            continue
        if len(parts) == 4 and parts[0] == "train" and parts[2] == "images":
            if parts[1] not in label:
                raise DatasetError(f"{where}: train/{parts[1]}/ is not a class of wnids.txt; remove it or use the "
                                   "wnids.txt of the same copy")
            train.append((label[parts[1]], parts[3], name))
        elif len(parts) == 3 and parts[:2] == ["val", "images"]:
            if parts[2] not in val_label:
                raise DatasetError(f"{where}: {name} has no line in {ANNOTATIONS}; remove it or restore that file")
            val.append((val_label[parts[2]], parts[2], name))
    empty = sorted(set(range(len(wnids))) - {c for c, _, _ in train})
    if empty:
        raise DatasetError(f"{where}: no training images of {len(empty)} wnids.txt classes (first: "
                           f"train/{wnids[empty[0]]}/images/); unpack tiny-imagenet-200.zip again")
    unlisted = sorted(set(val_label) - {f for _, f, _ in val})
    if unlisted:
        raise DatasetError(f"{where}: {ANNOTATIONS} lists {len(unlisted)} images val/images/ lacks (first: "
                           f"{unlisted[0]}); unpack tiny-imagenet-200.zip again")
    train_x, native = _stack(train, files, image_size, None, where)
    test_x, _ = _stack(val, files, image_size, native, where)
    train_y, test_y = (np.array([c for c, _, _ in sorted(part)], np.int64) for part in (train, val))
    return Arrays(train_x, train_y, test_x, test_y, tuple(wnids))


def _wnids(data: bytes, where: str) -> list[str]:
    wnids = [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    if not wnids or len(set(wnids)) != len(wnids):
        raise DatasetError(f"{where}: wnids.txt must list distinct class ids, one per line; restore it")
    return wnids


def _annotations(data: bytes, label: dict[str, int], where: str) -> dict[str, int]:
    """val file name -> class index, from the annotation lines (file, wnid, box)."""
    out = {}
    for k, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 2:
            raise DatasetError(f"{where}: {ANNOTATIONS} line {k} is not 'file<TAB>wnid<TAB>box'; restore that file")
        if fields[1] not in label:
            raise DatasetError(f"{where}: {ANNOTATIONS} line {k} names {fields[1]!r}, which is not in wnids.txt; "
                               "use the wnids.txt and val annotations of one copy of TinyImageNet")
        out[fields[0]] = label[fields[1]]
    return out


def _stack(items: list[tuple[int, str, str]], files, size: int, native: tuple[int, int] | None,
           where: str) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Decode (class index, file name, member) in (class index, file name) order into uint8 (N, 3, size, size).

    Every image must have the size of the first (`native`, 64x64 in the original): a stray image of
    another size is a damaged copy, not something to resize silently."""
    from PIL import Image
    out = np.empty((len(items), 3, size, size), np.uint8)
    for i, (_, _, name) in enumerate(sorted(items)):
        im = open_image(files[name](), f"{where}:{name}")
        native = native or im.size
        if im.size != native:
            raise DatasetError(f"{where}: {name} is {im.size[0]}x{im.size[1]}, the other images "
                               f"{native[0]}x{native[1]}; replace that file with the original")
        if im.size != (size, size):  # PIL's bilinear resize (antialiased), as torchvision's Resize on PIL images
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        out[i] = np.asarray(im).transpose(2, 0, 1)
    return out, native
