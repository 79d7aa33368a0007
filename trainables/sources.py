"""Where images come from: torchvision's CIFAR-10 files, an ImageFolder tree or its .tar.gz.

Every reader returns decoded uint8 arrays; `cached` decodes a source once and keeps the arrays
on disk, keyed by the source's content, so later loads are a plain array read.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

CACHE_ENV = "TASKDISC_CACHE"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_MEMBER = re.compile(r"^(?:\./)?(?:[^/]+/)*?(train|test)/([^/]+)/([^/]+)$")


class DatasetError(RuntimeError):
    """The dataset could not be found or read; the message says where we looked and what to do."""


@dataclass(frozen=True)
class Arrays:
    """Decoded images: uint8 (N, C, H, W) and int64 class labels, train and test, class names."""
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: tuple[str, ...]


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "taskdisc"))


def content_key(path: Path) -> str:
    """sha256 of a file's bytes; for a folder, of every file's relative path, size and mtime.

    Hashing every image of a folder would cost as much as decoding it, so folders are keyed by
    their listing; files (a tarball, torchvision's batches) by their bytes.
    """
    h = hashlib.sha256()
    if path.is_file():
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        return h.hexdigest()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        if p.name.startswith("."):
            continue
        st = p.stat()
        if p.suffix in (".gz", ".tar", ".tgz") or p.parent.name == "cifar-10-batches-py":
            h.update(content_key(p).encode())
        h.update(f"{p.relative_to(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cached(source: Path, kind: str, read: Callable[[Path], Arrays]) -> Arrays:
    """Return `read(source)`, decoding only when no cache entry matches the source's content."""
    entry = cache_dir() / f"{kind}-{content_key(source)[:24]}"
    names = ("train_x", "train_y", "test_x", "test_y")
    if (entry / "meta.json").exists():
        meta = json.loads((entry / "meta.json").read_text())
        return Arrays(*(np.load(entry / f"{n}.npy") for n in names), classes=tuple(meta["classes"]))
    arrays = read(source)
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".tmp-"))
    try:
        for n in names:
            np.save(tmp / f"{n}.npy", getattr(arrays, n))
        (tmp / "meta.json").write_text(json.dumps({"classes": list(arrays.classes), "source": str(source)}))
        os.rename(tmp, entry)  # atomic: readers see a whole entry or none
    except OSError:
        pass  # another process wrote the same entry first; ours is identical
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return arrays


def open_image(data: bytes, where: str):
    """The image in `data` as a loaded RGB PIL image; DatasetError naming `where` if it is not one."""
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.convert("RGB")
    except Exception as e:  # PIL raises many types for a bad file
        raise DatasetError(f"cannot decode image {where}: {e}; replace or remove that file") from None


def _decode(data: bytes, where: str) -> np.ndarray:
    return np.asarray(open_image(data, where)).transpose(2, 0, 1)


def _stack(items: list[tuple[str, str, bytes | Path]], where: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode (class, file name, bytes-or-path) triples in (class, file name) order."""
    classes = sorted({c for c, _, _ in items})
    index = {c: i for i, c in enumerate(classes)}
    items = sorted(items, key=lambda t: (index[t[0]], t[1]))
    images = [_decode(d if isinstance(d, bytes) else Path(d).read_bytes(), f"{where}:{c}/{n}")
              for c, n, d in items]
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise DatasetError(f"{where}: images have different sizes {sorted(shapes)[:3]}; resize them to one size")
    return np.stack(images), np.array([index[c] for c, _, _ in items], dtype=np.int64), classes


def _split_parts(parts: dict[str, list], where: str) -> Arrays:
    if not parts.get("train") or not parts.get("test"):
        raise DatasetError(f"{where}: expected images under train/<class>/ and test/<class>/; "
                           "lay the dataset out in the ImageFolder layout")
    train_x, train_y, classes = _stack(parts["train"], where)
    test_x, test_y, test_classes = _stack(parts["test"], where)
    if test_classes != classes:
        raise DatasetError(f"{where}: train and test have different class folders; make them match")
    return Arrays(train_x, train_y, test_x, test_y, tuple(classes))


def read_tarball(path: Path) -> Arrays:
    """An ImageFolder tree packed as .tar(.gz): train/<class>/<file>, test/<class>/<file>."""
    parts: dict[str, list] = {"train": [], "test": []}
    try:
        with tarfile.open(path) as tar:
            for m in tar:
                hit = _MEMBER.match(m.name)
                if m.isfile() and hit and hit.group(3).lower().endswith(IMAGE_SUFFIXES):
                    parts[hit.group(1)].append((hit.group(2), hit.group(3), tar.extractfile(m).read()))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DatasetError(f"{path}: not a readable tarball ({e}); re-download or repack it") from None
    return _split_parts(parts, str(path))


def read_image_folder(path: Path) -> Arrays:
    """An ImageFolder tree on disk: train/<class>/<file>, test/<class>/<file>."""
    parts: dict[str, list] = {"train": [], "test": []}
    for part in parts:
        for f in sorted((path / part).glob("*/*")):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                parts[part].append((f.parent.name, f.name, f))
    return _split_parts(parts, str(path))


def read_torchvision_cifar10(root: Path, download: bool = False) -> Arrays:
    """torchvision's CIFAR-10 (`root/cifar-10-batches-py`), downloaded there if asked."""
    from torchvision.datasets import CIFAR10
    try:
        train, test = (CIFAR10(str(root), train=t, download=download) for t in (True, False))
    except Exception as e:  # torchvision raises RuntimeError/URLError/OSError depending on what failed
        if download:
            raise DatasetError(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__) from None
        raise DatasetError(f"cifar10: torchvision could not read CIFAR-10 in {root} ({e}); pass a folder or "
                           ".tar.gz that holds it") from None
    return Arrays(train.data.transpose(0, 3, 1, 2).copy(), np.asarray(train.targets, np.int64),
                  test.data.transpose(0, 3, 1, 2).copy(), np.asarray(test.targets, np.int64),
                  tuple(train.classes))


def is_tarball(path: Path) -> bool:
    return path.is_file() and path.name.endswith(TAR_SUFFIXES)
