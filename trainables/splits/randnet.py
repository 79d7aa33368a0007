"""The random-network split: the authors' ImageNet recipe for an adversarial split (DESIGN.md, section 4).

A randomly initialised network (default ResNet-50, one output) scores every training image; within
each class the lower half by score is the splitting task d (1), and the target t is a seeded random
half of the classes. The split is then adversarial_split(t, d). Scoring streams the image folder or
tarball batch by batch (trainables/image_stream.py), so it holds only the scores (one float per
image), the listing and one batch: it runs on ImageNet's 1.28M images as on CIFAR-10. The scorer
is resumable (`step`, `state_dict`), so a Tune trial can drive it like any other.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn as nn

from ..cpu_memory import retain_freed_memory
from ..image_stream import list_images, stream_images
from ..models import build_model
from .config import RandnetConfig
from .construct import TrainTestSplit, adversarial_split

# Fields that only pace the run: a resumed scorer may change them, and its scores stay the same.
_PACING = ("batches_per_step", "decode_threads")


def random_class_half(num_classes: int, seed: int) -> tuple[int, ...]:
    """A seeded random floor(K/2) of the K class ids, sorted: the target's positive classes."""
    perm = torch.randperm(num_classes, generator=torch.Generator().manual_seed(seed))
    return tuple(sorted(perm[:num_classes // 2].tolist()))


def lower_half_rule(scores: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
    """1 for the floor(n/2) lowest-scoring images of each class (ties: lower index first), else 0."""
    by_score = torch.sort(scores, stable=True).indices  # stable: equal scores keep index order
    order = by_score[torch.sort(class_ids[by_score], stable=True).indices]  # by class, then score
    counts = torch.bincount(class_ids)
    starts = torch.cumsum(counts, 0) - counts
    sorted_classes = class_ids[order]
    rank = torch.arange(len(order)) - starts[sorted_classes]
    rule = torch.zeros(len(scores), dtype=torch.int64)
    rule[order] = (rank < counts[sorted_classes] // 2).long()
    return rule


@dataclass(frozen=True, eq=False)
class RandomNetSplit:
    """Scores and tasks over the training images, in dataset order, and the adversarial split."""
    scores: torch.Tensor  # (N,) float32, the random network's output per image
    classes: tuple[str, ...]
    class_ids: torch.Tensor  # (N,) int64
    files: tuple[str, ...]  # relative file names, "train/<class>/<file>"
    target_classes: tuple[int, ...]  # sorted class ids whose images are target 1
    target: torch.Tensor  # (N,) int64 0/1
    rule: torch.Tensor  # (N,) int64 0/1: lower half of its class by score
    split: TrainTestSplit  # train: rule == target, test: rule != target

    @classmethod
    def from_scores(cls, scores: torch.Tensor, classes: tuple[str, ...], class_ids: torch.Tensor,
                    files: tuple[str, ...], target_seed: int) -> RandomNetSplit:
        if not torch.isfinite(scores).all():
            bad = int((~torch.isfinite(scores)).sum())
            raise ValueError(f"the random network scored {bad} images as inf/nan; use precision fp32 "
                             "or another net_seed")
        target_classes = random_class_half(len(classes), target_seed)
        target = torch.isin(class_ids, torch.tensor(target_classes, dtype=torch.int64)).long()
        rule = lower_half_rule(scores, class_ids)
        return cls(scores, classes, class_ids, files, target_classes, target, rule,
                   adversarial_split(target, rule))


def _seeded_net(config: RandnetConfig, image_shape: tuple[int, int, int]) -> nn.Module:
    """Built on the CPU under a private RNG, so the weights depend on net_seed alone (not the device)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.net_seed)
        return build_model(config.arch, 1, config.width, image_shape)


class RandomNetScorer:
    """Scores the training images of an image tree (folder or tarball) with a random network,
    `batches_per_step` batches per `step`; `result` builds the split once `done`."""

    def __init__(self, root: str | Path, config: RandnetConfig, device: torch.device | str = "cpu"):
        self.config, self.device = config, torch.device(device)
        retain_freed_memory(self.device)
        self.images = list_images(root, "train")
        shape = (3, config.image_size, config.image_size) if config.image_size else self._native_shape()
        fmt = torch.channels_last if config.channels_last else torch.preserve_format
        # eval mode: BatchNorm uses its (initial) running statistics, so a score does not depend
        # on the other images of its batch, nor on the stream order.
        self.net = _seeded_net(config, shape).eval().to(self.device, memory_format=fmt)
        self.mean = torch.tensor(config.mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(config.std, device=self.device).view(1, 3, 1, 1)
        self.scores = torch.full((len(self.images),), float("nan"), device=self.device)
        self.position = 0  # images scored, in stream order
        self.wall_s = 0.0
        self._batches = None

    def _native_shape(self) -> tuple[int, int, int]:
        first = stream_images(self.images, 1, None)
        with contextlib.closing(first):
            return tuple(next(first)[1].shape[1:])

    @property
    def done(self) -> bool:
        return self.position >= len(self.images)

    def _stream(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        c = self.config
        return stream_images(self.images, c.batch_size, c.image_size, self.position, c.crop_fraction, c.decode_threads)

    @torch.no_grad()
    def _score(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True).float().div_(255).sub_(self.mean).div_(self.std)
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        ctx = (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.config.precision == "bf16"
               else contextlib.nullcontext())
        with ctx:
            return self.net(x).float().squeeze(1)

    def step(self) -> dict[str, float]:
        """Score the next `batches_per_step` batches; returns progress metrics."""
        start, before = time.perf_counter(), self.position
        if self._batches is None:
            self._batches = self._stream()
        for _ in range(self.config.batches_per_step):
            batch = next(self._batches, None)
            if batch is None:
                break
            idx, x = batch
            self.scores[idx.to(self.device)] = self._score(x)
            self.position += len(idx)
        if self.done:
            self._batches.close()
        if self.position > before:
            float(self.scores[idx[-1]])  # waits for the device's queued batches, so the rate is true
        self.wall_s += time.perf_counter() - start
        return {"randnet/images": self.position, "randnet/fraction": self.position / len(self.images),
                "randnet/images_per_s": (self.position - before) / max(time.perf_counter() - start, 1e-9),
                "randnet/wall_s": self.wall_s}

    def state_dict(self) -> dict:
        """Scores so far (NaN = not yet scored) and the stream position; plain tensors and numbers."""
        return {"scores": self.scores.cpu(), "position": self.position, "wall_s": self.wall_s,
                "stream_key": self.images.stream_key, "config": asdict(self.config)}

    def load_state_dict(self, state: dict) -> None:
        mine = {k: v for k, v in asdict(self.config).items() if k not in _PACING}
        theirs = {k: v for k, v in state["config"].items() if k not in _PACING}
        if mine != theirs:
            changed = sorted(k for k in mine if mine[k] != theirs.get(k))
            raise ValueError(f"this state belongs to a random-network scorer with another config (differs in "
                             f"{', '.join(changed)}); resume with the config it was saved under")
        if state["stream_key"] != self.images.stream_key:
            raise ValueError(f"this state was saved on images listed or ordered otherwise than {self.images.source}'s "
                             "(another dataset, or a repacked tarball); resume on the copy it was saved on")
        self.scores = state["scores"].to(self.device)
        self.position, self.wall_s = state["position"], state["wall_s"]
        if self._batches is not None:
            self._batches.close()
        self._batches = None  # the next step streams from the loaded position

    def result(self) -> RandomNetSplit:
        if not self.done:
            raise RuntimeError(f"the scorer has scored {self.position} of {len(self.images)} images; "
                               "call step() until done")
        return RandomNetSplit.from_scores(self.scores.cpu(), self.images.classes, self.images.class_ids,
                                          self.images.files, self.config.target_seed)


def random_net_split(root: str | Path, config: RandnetConfig, device: torch.device | str = "cpu",
                     reporter: Callable[[dict], None] | None = None) -> RandomNetSplit:
    """Score every training image of `root` (an ImageFolder tree or its tarball) and build the split,
    reporting each step's metrics when given a reporter."""
    scorer = RandomNetScorer(root, config, device)
    while not scorer.done:
        metrics = scorer.step()
        if reporter is not None:
            reporter(metrics)
    return scorer.result()
