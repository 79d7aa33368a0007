"""Shared fixtures. CIFAR-10 comes from $TASKDISC_CIFAR10 (set by .ci/run to the shared copy)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from trainables.data import CIFAR10_ENV, load_dataset


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
