"""Dataset registry, the agreement-score split and device-resident normalised batches.

Images live as one uint8 tensor (N, C, H, W); they are normalised batch by batch on the
device they live on, so on CUDA the whole set stays on the GPU and no DataLoader is needed.
"""
from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # in annotations only: torch is imported where used, so loading a spec needs none
    import torch

from .sources import (TAR_SUFFIXES, Arrays, DatasetError, cache_dir, cached, content_key, is_tarball,
                      read_image_folder, read_tarball, read_torchvision_cifar10)
from .tiny_imagenet import (DEFAULT_IMAGE_SIZE, TINY_IMAGENET_ENV, read_tiny_imagenet, tiny_imagenet_identity,
                            tiny_imagenet_source)

CIFAR10_ENV = "TASKDISC_CIFAR10"
# The paper's normalisation (official CIFAR-10 train statistics), as fractions of 255.
CIFAR10_MEAN = (125.3 / 255, 123.0 / 255, 113.9 / 255)
CIFAR10_STD = (63.0 / 255, 62.1 / 255, 66.7 / 255)


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image dataset held in memory as uint8 tensors (N, C, H, W)."""
    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])


def _from_arrays(name: str, a: Arrays, mean=None, std=None) -> ImageDataset:
    import torch
    x = torch.from_numpy(a.train_x)
    if mean is None:  # a dataset without published statistics: measure them on its training part
        xf = x.float().div_(255)
        mean = tuple(xf.mean((0, 2, 3)).tolist())
        std = tuple(xf.std((0, 2, 3)).tolist())
    return ImageDataset(name, x, torch.from_numpy(a.train_y), torch.from_numpy(a.test_x),
                        torch.from_numpy(a.test_y), a.classes, tuple(mean), tuple(std))


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (fractions of 255) of uint8 images (N, C, H, W), from value histograms:
    exact, and without a float copy of the set (TinyImageNet at 64 px would need 5 GB)."""
    import torch
    hist = torch.zeros(x.shape[1], 256, dtype=torch.float64)
    for chunk in x.split(1024):
        for c in range(x.shape[1]):
            hist[c] += torch.bincount(chunk[:, c].reshape(-1), minlength=256)
    v = torch.arange(256, dtype=torch.float64) / 255
    n = hist.sum(1)
    mean = (hist * v).sum(1) / n
    var = (hist * (v - mean[:, None]) ** 2).sum(1) / (n - 1)
    return tuple(mean.tolist()), tuple(var.sqrt().tolist())


def _native_size(name: str, image_size: int | None) -> None:
    if image_size is not None:
        raise DatasetError(f"{name}: dataset.image_size={image_size}, but only tiny-imagenet is resized; "
                           "leave image_size null")


def is_image_tree(path: Path) -> bool:
    """Looks like an ImageFolder tree (a train/ folder) or its tarball; reading checks the rest."""
    return is_tarball(path) or (path / "train").is_dir()


def _read_folder_or_tar(path: Path, kind: str) -> Arrays:
    if is_tarball(path):
        return cached(path, kind + "-tar", read_tarball)
    if (path / "train").is_dir() and (path / "test").is_dir():
        return cached(path, kind + "-folder", read_image_folder)
    raise DatasetError(f"{kind}: no dataset at {path} (looked for a .tar.gz or train/ and test/ folders); "
                       "pass the path of an ImageFolder tree or its tarball")


def _cifar10_path(root: str | None) -> Path:
    return Path(root or os.environ.get(CIFAR10_ENV) or cache_dir() / "cifar10").expanduser()


def _torchvision_dir(path: Path) -> Path:
    return path if path.name == "cifar-10-batches-py" else path / "cifar-10-batches-py"


def _downloadable(path: Path) -> bool:
    """torchvision may download into `path`: nothing yet, an empty folder or one holding only its
    own archive; never a tarball's name or a folder of other files (a wrong path, not a place to fill)."""
    if path.is_file() or path.name.endswith(TAR_SUFFIXES):
        return False
    return not path.exists() or all(p.name == "cifar-10-python.tar.gz" for p in path.iterdir())


LAYOUTS = (f"set ${CIFAR10_ENV} or dataset.root to a copy: torchvision's cifar-10-batches-py folder, an "
           "ImageFolder tree (train/<class>/*, test/<class>/*) or its .tar.gz")


def _download_cifar10(path: Path):
    """torchvision's download into `path`; on failure nothing is left behind that was not there."""
    new = next((p for p in reversed([path, *path.parents]) if not p.exists()), None)  # the topmost folder made
    try:
        return read_torchvision_cifar10(path, download=True)
    except DatasetError as e:
        if new is not None:
            shutil.rmtree(new, ignore_errors=True)
        raise DatasetError(f"cifar10: no CIFAR-10 at {path} and the download failed ({e}); {LAYOUTS}") from None


def _missing_cifar10(path: Path) -> DatasetError:
    return DatasetError(f"cifar10: no CIFAR-10 at {path} (looked for cifar-10-batches-py/, train/ and "
                        f"test/ folders, or a .tar.gz); {LAYOUTS}")


def load_cifar10(root: str | None = None, download: bool = True, image_size: int | None = None) -> ImageDataset:
    """CIFAR-10 from `root`: torchvision's files, an ImageFolder tree, or its .tar.gz.

    With no root: $TASKDISC_CIFAR10, else torchvision's files under the cache folder,
    downloaded on first use.
    """
    _native_size("cifar10", image_size)
    path = _cifar10_path(root)
    if is_image_tree(path):
        arrays = _read_folder_or_tar(path, "cifar10")
    elif _torchvision_dir(path).is_dir():
        arrays = cached(_torchvision_dir(path), "cifar10-torchvision", lambda p: read_torchvision_cifar10(p.parent))
    elif download and _downloadable(path):
        arrays = _download_cifar10(path)
        arrays = cached(path / "cifar-10-batches-py", "cifar10-torchvision", lambda p: arrays)
    else:
        raise _missing_cifar10(path)
    if len(arrays.classes) != 10 or arrays.train_x.shape[1:] != (3, 32, 32):
        raise DatasetError(f"cifar10: {path} holds {len(arrays.classes)} classes of shape "
                           f"{arrays.train_x.shape[1:]}, not 10 of (3, 32, 32); point at CIFAR-10")
    return _from_arrays("cifar10", arrays, CIFAR10_MEAN, CIFAR10_STD)


def cifar10_identity(root: str | None = None, download: bool = True, image_size: int | None = None) -> str:
    _native_size("cifar10", image_size)
    # torchvision's files are the official ones (torchvision checks their md5); other copies
    # (e.g. the JPEG tarball, in another image order) are told apart by content.
    path = _cifar10_path(root)
    if is_image_tree(path):
        return f"cifar10:{content_key(path)[:16]}"
    if _torchvision_dir(path).is_dir() or (download and _downloadable(path)):
        return "cifar10:official"
    raise _missing_cifar10(path)


def folder_identity(root: str | None = None, download: bool = False, image_size: int | None = None) -> str:
    _native_size("imagefolder", image_size)
    if not root or not is_image_tree(Path(root)):
        raise DatasetError(f"imagefolder: no dataset at {root} (looked for a .tar.gz or train/ and test/ "
                           "folders); set dataset.root to an ImageFolder tree or its tarball")
    return f"imagefolder:{content_key(Path(root))[:16]}"


def load_image_folder(root: str | None = None, download: bool = False, image_size: int | None = None) -> ImageDataset:
    """Any ImageFolder tree (or .tar.gz) of equally sized images; statistics measured on train."""
    _native_size("imagefolder", image_size)
    if not root:
        raise DatasetError("imagefolder: no root given; set dataset.root to an ImageFolder tree or .tar.gz")
    return _from_arrays("imagefolder", _read_folder_or_tar(Path(root).expanduser(), "imagefolder"))


def load_tiny_imagenet(root: str | None = None, download: bool = False, image_size: int | None = None) -> ImageDataset:
    """TinyImageNet in its original layout (folder, .zip or .tar.gz; trainables.tiny_imagenet), resized to
    image_size (null = 32, the authors'); never downloaded. Statistics measured on train."""
    import torch
    size = image_size or DEFAULT_IMAGE_SIZE
    arrays = cached(tiny_imagenet_source(root), f"tiny-imagenet-{size}px", lambda p: read_tiny_imagenet(p, size))
    return _from_arrays("tiny-imagenet", arrays, *channel_stats(torch.from_numpy(arrays.train_x)))


DATASETS: dict[str, Callable[..., ImageDataset]] = {
    "cifar10": load_cifar10,
    "imagefolder": load_image_folder,
    "tiny-imagenet": load_tiny_imagenet,
}

# Where a dataset's root comes from when a spec gives none.
ROOT_ENVS = {"cifar10": CIFAR10_ENV, "tiny-imagenet": TINY_IMAGENET_ENV}


# Cheap checks (no decoding) that a source is usable, returning an identity that depends on the
# data, not on where a copy lives: sweeps key their results by it.
DATASET_IDENTITIES: dict[str, Callable[..., str]] = {
    "cifar10": cifar10_identity,
    "imagefolder": folder_identity,
    "tiny-imagenet": tiny_imagenet_identity,
}


@functools.lru_cache(maxsize=16)
def dataset_identity(name: str, root: str | None = None, download: bool = True, image_size: int | None = None) -> str:
    """Check that dataset `name` can be had from `root` and return its identity; DatasetError if not."""
    return DATASET_IDENTITIES[name](root=root, download=download, image_size=image_size)


def load_dataset(name: str, root: str | None = None, download: bool = True,
                 image_size: int | None = None) -> ImageDataset:
    """Load a registered dataset (resized to `image_size` px where it supports that); an unknown name lists
    the valid ones."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(sorted(DATASETS))}")
    return DATASETS[name](root=root, download=download, image_size=image_size)


@dataclass(frozen=True)
class Split:
    """Index tensors of the agreement-score protocol: train and holdout into the training images,
    test into the test images."""
    train: torch.Tensor
    holdout: torch.Tensor
    test: torch.Tensor


def seeded_subset(idx: torch.Tensor, n: int | None, g: torch.Generator, what: str) -> torch.Tensor:
    import torch
    if n is None:
        return idx
    if n > len(idx):
        raise ValueError(f"{what}={n} exceeds the {len(idx)} images available; lower it")
    return idx[torch.randperm(len(idx), generator=g)[:n]].sort().values


# Which images make up the AS holdout; part of every result's identity, so results under an earlier
# rule (v1: the permutation's first `holdout` images) are never mixed with these.
HOLDOUT_RULE = "random_split-last-v2"


def make_split(n_train_images: int, n_test_images: int, holdout: int = 5000, seed: int = 0,
               train_subset: int | None = None, holdout_subset: int | None = None,
               test_subset: int | None = None, subset_seed: int = 0) -> Split:
    """The authors' split: `random_split(train, [n - holdout, holdout], generator=Generator().manual_seed(seed))`
    (check_as.py), whose held-out images are the last `holdout` of a seeded permutation; plus the
    test images; optional seeded subsets of each part for quick runs."""
    import torch
    if not 0 < holdout < n_train_images:
        raise ValueError(f"holdout={holdout} must be between 1 and {n_train_images - 1}")
    perm = torch.randperm(n_train_images, generator=torch.Generator().manual_seed(seed))  # random_split's draw
    fit = n_train_images - holdout
    g = torch.Generator().manual_seed(subset_seed)
    return Split(train=seeded_subset(perm[:fit].sort().values, train_subset, g, "train_subset"),
                 holdout=seeded_subset(perm[fit:].sort().values, holdout_subset, g, "holdout_subset"),
                 test=seeded_subset(torch.arange(n_test_images), test_subset, g, "test_subset"))


class DeviceImages:
    """uint8 images on a device, normalised into float batches on demand."""

    def __init__(self, images: torch.Tensor, mean, std, device: torch.device | str = "cpu",
                 channels_last: bool = False):
        import torch
        self.images = images.to(device)
        c = images.shape[1]
        std_t = torch.tensor(std, device=self.images.device).view(1, c, 1, 1)
        # x/255 - mean, then / std, folded into one multiply-add
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -torch.tensor(mean, device=self.images.device).view(1, c, 1, 1) / std_t
        self.channels_last = channels_last

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        import torch
        x = torch.addcmul(self.shift, self.images[idx].float(), self.scale)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def device_images(dataset: ImageDataset, device: torch.device | str, channels_last: bool = False
                  ) -> tuple[DeviceImages, DeviceImages]:
    """The dataset's training and test images on `device`, ready for normalised batches."""
    return (DeviceImages(dataset.train_x, dataset.mean, dataset.std, device, channels_last),
            DeviceImages(dataset.test_x, dataset.mean, dataset.std, device, channels_last))
