"""Training on a split: one network or a pair on the split's train part, scored on its test part.

This is the agreement protocol with the split in place of the AS holdout: `AgreementRun` trains on
`Split.train` and measures accuracy (and, for a pair, agreement) on `Split.holdout`, which here is
the split's test part; `Split.test` stays the dataset's test images. The protocol's subset fields
keep their meaning per part: `train_subset` of the train part, `holdout_subset` of the test part.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..agreement_score import AgreementResult, AgreementRun, Reporter
from ..data import device_images
from ..data import ImageDataset, Split, seeded_subset
from ..protocol import Protocol
from ..labels import TaskLabels
from ..tasks import make_task
from .config import LABELS
from .construct import TrainTestSplit


def split_parts(split: TrainTestSplit, protocol: Protocol, n_test_images: int) -> Split:
    g = torch.Generator().manual_seed(protocol.subset_seed)
    return Split(train=seeded_subset(split.train, protocol.train_subset, g, "train_subset"),
                 holdout=seeded_subset(split.test, protocol.holdout_subset, g, "holdout_subset"),
                 test=seeded_subset(torch.arange(n_test_images), protocol.test_subset, g, "test_subset"))


def training_labels(dataset: ImageDataset, target: TaskLabels, labels: str) -> TaskLabels:
    """The labels a split trial trains on: `target` itself, or the dataset's own classes."""
    if labels not in LABELS:
        raise ValueError(f"labels={labels!r} is invalid: choose one of {', '.join(LABELS)}")
    return target if labels == "target" else make_task("real10", 0, dataset)


def split_run(train_images, test_images, split: TrainTestSplit, labels: TaskLabels, protocol: Protocol,
              seed: int = 0, networks: int = 1) -> AgreementRun:
    """The stateful run (epoch by epoch, resumable) of `networks` networks on `split`."""
    parts = split_parts(split, protocol, len(test_images))
    return AgreementRun(train_images, test_images, labels, parts, protocol, seed, networks)


def train_on_split(dataset: ImageDataset, split: TrainTestSplit, labels: TaskLabels, protocol: Protocol,
                   seed: int = 0, networks: int = 1, device: torch.device | str = "cpu",
                   reporter: Reporter | None = None) -> AgreementResult:
    """Train on the split's train part; `holdout_acc` of the result is the accuracy on its test part."""
    train, test = device_images(dataset, device, protocol.channels_last)
    run = split_run(train, test, split, labels, protocol, seed, networks)
    while not run.done:
        metrics = run.train_epoch()
        if reporter is not None:
            reporter(metrics)
    return run.result()


@dataclass(frozen=True)
class SplitSamples:
    """A few images of each (part, target class) cell, for a person to see what separates the parts."""
    images: dict[str, torch.Tensor]  # "train/0", "train/1", "test/0", "test/1" -> uint8 (k, C, H, W)


def sample_images(dataset: ImageDataset, split: TrainTestSplit, target: torch.Tensor, per_cell: int = 8,
                  seed: int = 0) -> SplitSamples:
    g = torch.Generator().manual_seed(seed)
    cells = {}
    for part, ids in (("train", split.train), ("test", split.test)):
        for c in range(int(target.max()) + 1):
            members = ids[target[ids] == c]
            pick = members[torch.randperm(len(members), generator=g)[:per_cell]]
            cells[f"{part}/{c}"] = dataset.train_x[pick].clone()
    return SplitSamples(cells)
