"""The agreement-score protocol: train a pair on a task epoch by epoch, then score it.

`AgreementRun` is the stateful core (one epoch per `train_epoch`, state to and from a dict,
so a Tune trial or a notebook can drive it); `agreement_score` runs it to the end.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from .data import DeviceImages, ImageDataset, Split, device_images, make_split
from .pair import Pair, init_seeds
from .protocol import Protocol
from .labels import TaskLabels

Reporter = Callable[[dict], None]


@dataclass(frozen=True)
class AgreementResult:
    """Outcome of one pair (or one network) on one task: one accuracy per network, as fractions.
    Test accuracy is NaN where the task has no test labels; agreement is NaN for one network."""
    task: str
    seed: int
    agreement: float
    train_acc: tuple[float, ...]
    holdout_acc: tuple[float, ...]
    test_acc: tuple[float, ...]
    balance: float
    epochs: int
    wall_s: float
    images_per_s: float
    agreement_by_epoch: tuple[float, ...] = ()  # held-out agreement after each epoch

    def metrics(self) -> dict[str, float]:
        m = {"eval/agreement": self.agreement, "task/balance": self.balance, "train/epochs": self.epochs,
             "perf/wall_s": self.wall_s, "perf/images_per_s": self.images_per_s}
        for i in range(len(self.train_acc)):
            m[f"train/acc_{i}"], m[f"eval/acc_{i}"], m[f"test/acc_{i}"] = (
                self.train_acc[i], self.holdout_acc[i], self.test_acc[i])
        return m

    def to_dict(self) -> dict:
        return asdict(self)


def split_for(dataset: ImageDataset, protocol: Protocol) -> Split:
    return make_split(len(dataset.train_y), len(dataset.test_y), protocol.holdout, protocol.split_seed,
                      protocol.train_subset, protocol.holdout_subset, protocol.test_subset, protocol.subset_seed)


class AgreementRun:
    """One pair (seed `seed`) trained on `labels` under `protocol`, advanced one epoch at a time.
    `networks=1` trains the pair's first network alone (accuracies only, no agreement)."""

    def __init__(self, train_images: DeviceImages, test_images: DeviceImages, labels: TaskLabels,
                 split: Split, protocol: Protocol, seed: int = 0, networks: int = 2):
        if networks not in (1, 2):
            raise ValueError(f"networks={networks} is invalid: train 1 network or a pair (2)")
        self.train_images, self.test_images = train_images, test_images
        self.labels, self.split, self.protocol, self.seed = labels, split, protocol, seed
        device = train_images.device
        self.y = labels.train.to(device)
        self.y_test = labels.test.to(device) if labels.test is not None else None
        self.train_idx = split.train.to(device)
        self.pair = Pair(protocol, labels.num_classes, tuple(train_images.images.shape[1:]),
                         init_seeds(seed)[:networks], device)
        self.epoch, self.wall_s, self.images_seen = 0, 0.0, 0
        self.train_acc, self.stopped = (0.0,) * networks, False
        self.curve: list[float] = []  # held-out agreement after each epoch

    @property
    def done(self) -> bool:
        return self.stopped or self.epoch >= self.protocol.epochs

    def _order(self) -> torch.Tensor:
        # The batch order depends on (seed, epoch) only, so a resumed run replays the same batches.
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return self.train_idx[torch.randperm(len(self.train_idx), generator=g).to(self.train_idx.device)]

    def train_epoch(self) -> dict[str, float]:
        """Train both networks for one epoch; returns this epoch's metrics."""
        start, order, bs = time.perf_counter(), self._order(), self.protocol.batch_size
        loss_sum = torch.zeros(len(self.train_acc), device=self.y.device)
        correct = torch.zeros(len(self.train_acc), dtype=torch.long, device=self.y.device)
        n = len(order) if len(order) % bs != 1 else len(order) - 1  # BatchNorm cannot train on 1 image
        for i in range(0, n, bs):
            idx = order[i:min(i + bs, n)]
            loss, hits = self.pair.train_step(self.train_images.batch(idx), self.y[idx])
            loss_sum += loss
            correct += hits
        acc = (correct.double() / n).tolist()  # the epoch's one sync: on CUDA the clock stops after it
        self.epoch += 1
        self.images_seen += n
        self.wall_s += time.perf_counter() - start
        self.train_acc = tuple(acc)
        if self.protocol.early_stop_acc is not None and min(acc) >= self.protocol.early_stop_acc:
            self.stopped = True
        metrics: dict[str, float] = {"epoch": self.epoch}
        for i, loss in enumerate((loss_sum / n).tolist()):
            metrics[f"train/loss_{i}"], metrics[f"train/acc_{i}"] = loss, acc[i]
        metrics["perf/images_per_s"] = self.images_seen / max(self.wall_s, 1e-9)
        metrics.update(self.evaluate_holdout())
        self.curve.append(metrics["eval/agreement"])
        return metrics

    def _predict(self, images: DeviceImages, idx: torch.Tensor) -> torch.Tensor:
        bs = self.protocol.eval_batch_size
        idx = idx.to(images.device)
        return self.pair.predict(images.batch(idx[i:i + bs]) for i in range(0, len(idx), bs))

    def evaluate_holdout(self) -> dict[str, float]:
        idx = self.split.holdout.to(self.y.device)
        pred = self._predict(self.train_images, idx)
        acc = (pred == self.y[idx]).double().mean(1).tolist()
        agreement = float((pred[0] == pred[1]).double().mean()) if len(pred) == 2 else math.nan
        return {"eval/agreement": agreement, **{f"eval/acc_{i}": a for i, a in enumerate(acc)}}

    def evaluate_test(self) -> tuple[float, ...]:
        if self.y_test is None:
            return (math.nan,) * len(self.train_acc)
        idx = self.split.test.to(self.y_test.device)
        return tuple((self._predict(self.test_images, idx) == self.y_test[idx]).double().mean(1).tolist())

    def result(self) -> AgreementResult:
        held = self.evaluate_holdout()
        return AgreementResult(
            task=self.labels.name, seed=self.seed, agreement=held["eval/agreement"],
            train_acc=self.train_acc, holdout_acc=tuple(held[f"eval/acc_{i}"] for i in range(len(self.train_acc))),
            test_acc=self.evaluate_test(), balance=self.labels.balance(), epochs=self.epoch,
            wall_s=self.wall_s, images_per_s=self.images_seen / max(self.wall_s, 1e-9),
            agreement_by_epoch=tuple(self.curve))

    def state_dict(self) -> dict:
        return {"pair": self.pair.state_dict(), "epoch": self.epoch, "wall_s": self.wall_s,
                "images_seen": self.images_seen, "train_acc": list(self.train_acc), "stopped": self.stopped,
                "curve": list(self.curve)}

    def load_state_dict(self, state: dict) -> None:
        self.pair.load_state_dict(state["pair"])
        self.epoch, self.wall_s, self.images_seen = state["epoch"], state["wall_s"], state["images_seen"]
        self.train_acc, self.stopped = tuple(state["train_acc"]), state["stopped"]
        self.curve = list(state["curve"])



def agreement_score(dataset: ImageDataset, labels: TaskLabels, protocol: Protocol, seed: int = 0,
                    device: torch.device | str = "cpu", reporter: Reporter | None = None) -> AgreementResult:
    """Train pair `seed` on `labels` under `protocol` and return its agreement score and accuracies."""
    train, test = device_images(dataset, device, protocol.channels_last)
    run = AgreementRun(train, test, labels, split_for(dataset, protocol), protocol, seed)
    while not run.done:
        metrics = run.train_epoch()
        if reporter is not None:
            reporter(metrics)
    return run.result()
