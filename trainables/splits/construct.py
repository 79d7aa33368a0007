"""Train/test splits of a dataset's training images, built from tasks (the paper's section 6).

An adversarial split takes a binary target task t and a second task d (typically discovered):
train = {x : d(x) = t(x)}, test = {x : d(x) != t(x)}. A network trained on the train part with
labels t can fit t or d equally well there; if d is the easier rule it learns d, and on the test
part, where d and t disagree, it scores far below chance. The baselines are a seeded random 50/50
split and a random split with the same part sizes as the adversarial one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


class SplitError(ValueError):
    """A split is malformed or cannot be built; the message names the source and the fix."""


@dataclass(frozen=True)
class TrainTestSplit:
    """Sorted int64 indices into the dataset's training images: disjoint train and test parts."""
    train: torch.Tensor
    test: torch.Tensor

    @property
    def sizes(self) -> tuple[int, int]:
        return len(self.train), len(self.test)


def _indices(mask: torch.Tensor) -> torch.Tensor:
    return torch.nonzero(mask, as_tuple=True)[0].to(torch.int64)


def _binary(labels: torch.Tensor, what: str) -> torch.Tensor:
    if labels.dim() != 1 or (len(labels) and (labels.min() < 0 or labels.max() > 1)):
        raise SplitError(f"{what} must be a binary task (labels 0/1 per image); pick a binary task")
    return labels


def adversarial_split(target: torch.Tensor, rule: torch.Tensor) -> TrainTestSplit:
    """train = images where `rule` equals `target`, test = where they differ (both 0/1 per image)."""
    target, rule = _binary(target, "the target"), _binary(rule, "the splitting task")
    if target.shape != rule.shape:
        raise SplitError(f"the target labels {len(target)} images and the splitting task {len(rule)}; "
                         "use tasks of the same dataset")
    agree = target == rule
    return TrainTestSplit(_indices(agree), _indices(~agree))


def random_split_of_sizes(n: int, n_train: int, n_test: int, seed: int) -> TrainTestSplit:
    """A seeded random split of `n` images into parts of `n_train` and `n_test` images."""
    if n_train < 0 or n_test < 0 or n_train + n_test > n:
        raise SplitError(f"cannot draw parts of {n_train} and {n_test} images from {n}; lower the sizes")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return TrainTestSplit(perm[:n_train].sort().values, perm[n_train:n_train + n_test].sort().values)


def random_half_split(n: int, seed: int) -> TrainTestSplit:
    """The authors' baseline: a seeded random 50/50 split (train gets the extra image of an odd n)."""
    return random_split_of_sizes(n, n - n // 2, n // 2, seed)


def random_split_like(split: TrainTestSplit, n: int, seed: int) -> TrainTestSplit:
    """A seeded random split of `n` images with the part sizes of `split`."""
    return random_split_of_sizes(n, len(split.train), len(split.test), seed)


def check_split(split: TrainTestSplit, n: int, where: str) -> TrainTestSplit:
    """`split` if both parts are 1-D integer indices in 0..n-1, each once, with no image in both;
    otherwise a SplitError naming `where`."""
    for part, ids in (("train", split.train), ("test", split.test)):
        if ids.dim() != 1 or ids.is_floating_point() or ids.dtype == torch.bool:
            raise SplitError(f"{where}: the {part} part is not a 1-D list of integer image indices; "
                             "write each part as a list or 1-D integer tensor")
        if len(ids) and (ids.min() < 0 or ids.max() >= n):
            bad = int(ids.max() if ids.max() >= n else ids.min())
            raise SplitError(f"{where}: the {part} part holds index {bad}, outside the dataset's "
                             f"0..{n - 1}; use a split made for this dataset")
        if len(ids) != len(torch.unique(ids)):
            raise SplitError(f"{where}: the {part} part lists an image twice; list each image once")
    if len(split.train) == 0 or len(split.test) == 0:
        raise SplitError(f"{where}: a split needs images in both parts (train {len(split.train)}, "
                         f"test {len(split.test)}); pick another split")
    both = torch.isin(split.train, split.test)
    if both.any():
        raise SplitError(f"{where}: {int(both.sum())} images are in both train and test (e.g. index "
                         f"{int(split.train[both][0])}); a split's parts must be disjoint")
    return TrainTestSplit(split.train.to(torch.int64).sort().values, split.test.to(torch.int64).sort().values)


def split_summary(split: TrainTestSplit, target: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Sizes of both parts and their class balance under `target` (fraction of each class)."""
    out: dict[str, float] = {"split/train_size": len(split.train), "split/test_size": len(split.test)}
    for part, ids in (("train", split.train), ("test", split.test)):
        counts = torch.bincount(target[ids], minlength=num_classes).double() / max(len(ids), 1)
        for c, frac in enumerate(counts.tolist()):
            out[f"split/{part}_class{c}_frac"] = frac
    return out
