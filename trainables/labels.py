"""A task's labels over a dataset, and the human-labelled CIFAR-10 tasks' class sets."""
from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # in annotations only: torch is imported where used, so loading a spec needs none
    import torch

REAL_TASKS: tuple[tuple[int, ...], ...] = tuple(itertools.combinations(range(10), 5))[:126]


class TaskError(ValueError):
    """A task cannot be built (bad index, file or labels); the message says how to fix it."""


@dataclass(frozen=True)
class TaskLabels:
    """One task's labels over the dataset: `train` per training image, `test` per test image
    (None where the task is only defined on training images, e.g. a table)."""
    name: str
    train: torch.Tensor
    test: torch.Tensor | None
    num_classes: int

    def balance(self) -> float:
        """Fraction of training images in the most common class (0.5 = balanced binary task)."""
        import torch
        return float(torch.bincount(self.train, minlength=self.num_classes).max()) / len(self.train)

    def digest(self) -> str:
        """Identity of the labelling itself (not of its name): equal for two tasks that label every
        image alike, so runs that share labels are seen to share them."""
        import torch
        h = hashlib.sha256(f"{self.num_classes}:".encode())
        for part in (self.train, self.test):
            h.update(b"|" if part is None else part.to(torch.int64).cpu().numpy().tobytes())
        return h.hexdigest()[:16]
