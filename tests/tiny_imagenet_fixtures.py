"""Synthetic TinyImageNet trees in the original layout (folder, the distributed .zip, a .tar.gz).

Images are solid colours whose value encodes (part, class, file), stored as PNG bytes under
TinyImageNet's .JPEG names (the reader decodes by content), so any reordering or mislabelling shows
exactly, at 64 px and after resizing.
"""
from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

WNIDS = ("n03", "n01", "n04", "n02")  # unsorted: the class index is the line of wnids.txt, not the sort


def png(value: int, size: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def members(wnids=WNIDS, train: int = 3, val: int = 2, size: int = 64) -> dict[str, bytes]:
    """The files of a TinyImageNet tree: train value 10*class + k, val 100 + 10*class + k (k = file order)."""
    out = {"wnids.txt": "\n".join(wnids).encode() + b"\n", "words.txt": b"n01\tthing\n"}
    for c, w in enumerate(wnids):
        out[f"train/{w}/{w}_boxes.txt"] = b""
        for k in range(train):
            out[f"train/{w}/images/{w}_{k}.JPEG"] = png((10 * c + k) % 256, size)
    lines = []
    for c, w in enumerate(wnids):
        for k in range(val):
            name = f"val_{c}_{k}.JPEG"
            out[f"val/images/{name}"] = png((100 + 10 * c + k) % 256, size)
            lines.append(f"{name}\t{w}\t0\t0\t{size - 1}\t{size - 1}")
    out["val/val_annotations.txt"] = "\n".join(lines).encode() + b"\n"
    out["test/images/test_0.JPEG"] = png(7, size)  # unlabelled: ignored
    return out


def write_folder(path: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:  # as distributed: everything under tiny-imagenet-200/
        for name, data in files.items():
            zf.writestr(f"tiny-imagenet-200/{name}", data)
    return path


def write_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"./tiny-imagenet-200/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def tree_of_200(path: Path) -> Path:
    """A .zip of 200 classes, one 8x8 train and val image each: the class count of the authors' tasks."""
    return write_zip(path, members(tuple(f"n{i:03d}" for i in range(200)), 1, 1, 8))
