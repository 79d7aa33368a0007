"""Shared fixtures. CIFAR-10 comes from $TASKDISC_CIFAR10 (set by .ci/run to the shared copy)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Ray reads this at import: a test-local Ray binds to loopback, not to the machine's address.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from trainables.data import CIFAR10_ENV, load_dataset


def pytest_collection_modifyitems(items):
    """Tests that start their own Ray cluster run first: one process holds one Ray driver, and the session's
    shared Ray (`ray_address`) stays connected from its first user to the end."""
    items.sort(key=lambda item: item.get_closest_marker("own_ray") is None)


def cifar10_path() -> str | None:
    path = os.environ.get(CIFAR10_ENV)
    return str(Path(path).resolve()) if path and Path(path).exists() else None


needs_cifar10 = pytest.mark.skipif(cifar10_path() is None, reason=f"${CIFAR10_ENV} does not point at CIFAR-10")


@pytest.fixture(scope="session")
def cifar10():
    """The real CIFAR-10 (decoded once, then from the cache)."""
    path = cifar10_path()
    if path is None:
        pytest.skip(f"${CIFAR10_ENV} does not point at CIFAR-10")
    return load_dataset("cifar10", path, download=False)


def write_tiny_imagefolder(path: Path, classes: int = 10, train_per_class: int = 30, test_per_class: int = 8,
                           size: int = 32, seed: int = 0) -> Path:
    """A small ImageFolder .tar.gz of noisy images whose mean colour depends on the class."""
    import io
    import tarfile

    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    centres = rng.integers(40, 215, size=(classes, 3))
    with tarfile.open(path, "w:gz") as tar:
        for part, n in (("train", train_per_class), ("test", test_per_class)):
            for c in range(classes):
                for i in range(n):
                    img = np.clip(centres[c] + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
                    buf = io.BytesIO()
                    Image.fromarray(img).save(buf, format="PNG")
                    info = tarfile.TarInfo(f"{part}/class{c}/{i:04d}.png")
                    info.size = len(buf.getvalue())
                    tar.addfile(info, io.BytesIO(buf.getvalue()))
    return path


@pytest.fixture(scope="session")
def tiny_dataset_tar(tmp_path_factory) -> Path:
    return write_tiny_imagefolder(tmp_path_factory.mktemp("data") / "tiny.tar.gz")


@pytest.fixture(scope="session")
def ray_address():
    """One local Ray (2 CPUs, loopback only) for the whole test session; CLI runs join it."""
    import ray
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def one_thread():
    """Tiny tensors: a contended 2-thread pool costs ~10-100x on a 2-core CPU; results do not depend on it."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
