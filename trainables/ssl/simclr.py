"""SimCLR pretraining of a registry backbone: lightly's augmentations, projection head and NT-Xent loss.

`SimCLRRun` is the stateful core (one epoch per `step`, state to and from a dict, so a Tune trial
or a notebook can drive it); `pretrain` runs it to the end. The backbone sees pixels in [0, 1]
(no normalisation, like the authors' SSL backbones), so discovery on it uses backbone_input: unit.

Randomness: epoch e's image order and augmentations come from generators seeded with (seed, e), so
a resumed run replays exactly the epochs it has not done yet.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ..cpu_memory import retain_freed_memory
from ..data import ImageDataset, make_split, seeded_subset
from ..models import build_model
from .config import SimCLRConfig

Reporter = Callable[[dict], None]
KNN_K = 20  # neighbours of the k-NN probe (InstDisc's and solo-learn's choice is 20 or 200)


class Views(Dataset):
    """Two augmented views of image `order[i]` of uint8 `images` (N, C, H, W)."""

    def __init__(self, images: torch.Tensor, order: torch.Tensor, transform: Callable):
        self.images, self.order, self.transform = images, order, transform

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = Image.fromarray(self.images[self.order[i]].permute(1, 2, 0).numpy())
        return tuple(self.transform(image))


def build_backbone(config: SimCLRConfig, image_shape: tuple[int, int, int]) -> nn.Module:
    """The backbone without its classification head, weights from config.seed alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        backbone = build_model(config.arch, 1, config.width, tuple(image_shape))
    backbone.head = nn.Identity()  # the task encoder drops it too: the exported state has no head
    return backbone


def backbone_state(backbone: nn.Module) -> dict[str, torch.Tensor]:
    """A plain state dict (CPU tensors, no head) that TaskEncoder.backbone loads."""
    return {k: v.detach().cpu().clone() for k, v in backbone.state_dict().items() if not k.startswith("head.")}


@contextlib.contextmanager
def seeded(seed: int):
    """Torch's and NumPy's global generators seeded for the block (torchvision's and lightly's random
    transforms draw from them), restored afterwards."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(state)


class SimCLRRun:
    """A backbone trained by SimCLR on the AS training part of `dataset` (never its AS holdout)."""

    def __init__(self, dataset: ImageDataset, config: SimCLRConfig, device: torch.device | str = "cpu"):
        # lightly (and torchvision with it) is imported here: trials of other kinds skip its seconds of import
        from lightly.loss import NTXentLoss
        from lightly.models.modules import SimCLRProjectionHead
        from lightly.transforms import SimCLRTransform
        self.dataset, self.config, self.device = dataset, config, torch.device(device)
        retain_freed_memory(self.device)
        shape = dataset.image_shape
        split = make_split(len(dataset.train_x), len(dataset.test_x), config.holdout, config.split_seed)
        g = torch.Generator().manual_seed(config.seed + 1)
        self.images = seeded_subset(split.train, config.train_subset, g, "train_subset")
        self.knn_bank = seeded_subset(split.train, config.knn_images, g, "knn_images")
        self.knn_test = seeded_subset(torch.arange(len(dataset.test_x)), config.knn_test_images, g, "knn_test_images")
        if len(self.images) < config.batch_size:
            raise ValueError(f"batch_size={config.batch_size} is more than the {len(self.images)} pretraining "
                             "images; lower it")
        self.backbone = build_backbone(config, shape).to(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed + 2)
            self.projection = SimCLRProjectionHead(self.backbone.feature_dim, config.proj_hidden_dim,
                                                   config.proj_out_dim).to(self.device)
        self.loss = NTXentLoss(temperature=config.temperature)
        self.transform = SimCLRTransform(input_size=shape[1], cj_strength=config.cj_strength,
                                         min_scale=config.min_scale, gaussian_blur=config.gaussian_blur,
                                         normalize=None)
        self.base_lr = config.lr * config.batch_size / 256
        params = list(self.backbone.parameters()) + list(self.projection.parameters())
        self.optimizer = torch.optim.SGD(params, lr=self.base_lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay)
        self.epochs, self.wall_s = 0, 0.0

    @property
    def done(self) -> bool:
        return self.epochs >= self.config.epochs

    def loader(self, order: torch.Tensor, seed: int) -> DataLoader:
        """Batches of two augmented views of the images `order`, pixels in [0, 1]. Worker w's draws are
        seeded from (`seed`, w), so a resumed epoch makes the same views with the same worker count."""
        return DataLoader(Views(self.dataset.train_x, order, self.transform), self.config.batch_size, drop_last=True,
                          num_workers=self.config.loader_workers, generator=torch.Generator().manual_seed(seed),
                          pin_memory=self.device.type == "cuda")

    def step(self) -> dict[str, float]:
        """One epoch over the pretraining images (the last incomplete batch dropped); returns its metrics."""
        start, cfg = time.perf_counter(), self.config
        lr = self.base_lr * 0.5 * (1 + math.cos(math.pi * self.epochs / cfg.epochs))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        epoch_seed = cfg.seed * 1_000_003 + self.epochs
        order = self.images[torch.randperm(len(self.images), generator=torch.Generator().manual_seed(epoch_seed))]
        self.backbone.train()
        self.projection.train()
        losses, n_batches = [], len(order) // cfg.batch_size
        with seeded(epoch_seed):  # the views' draws when they are made in this process
            for x0, x1 in self.loader(order, epoch_seed):
                x0, x1 = x0.to(self.device, non_blocking=True), x1.to(self.device, non_blocking=True)
                loss = self.loss(self.projection(self.backbone.features(x0)),
                                 self.projection(self.backbone.features(x1)))
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                losses.append(float(loss.detach()))
        self.epochs += 1
        seconds = time.perf_counter() - start
        self.wall_s += seconds
        return {"epoch": self.epochs, "pretrain/loss": float(np.mean(losses)), "pretrain/lr": lr,
                "eval/knn_acc": self.knn_accuracy(),
                "perf/images_per_s": n_batches * cfg.batch_size / max(seconds, 1e-9)}

    @torch.no_grad()
    def features(self, images: torch.Tensor, idx: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        self.backbone.eval()
        out = [self.backbone.features(images[idx[i:i + batch_size]].to(self.device).float() / 255)
               for i in range(0, len(idx), batch_size)]
        return F.normalize(torch.cat(out), dim=1)

    def knn_accuracy(self) -> float:
        """Accuracy of a k-NN vote (cosine similarity) of the test images among the bank's features:
        how much class information the features hold, without training anything on labels."""
        bank = self.features(self.dataset.train_x, self.knn_bank)
        query = self.features(self.dataset.test_x, self.knn_test)
        labels = self.dataset.train_y[self.knn_bank].to(self.device)
        sims, nearest = (query @ bank.T).topk(min(KNN_K, len(bank)), dim=1)
        votes = torch.zeros(len(query), len(self.dataset.classes), device=self.device)
        votes.scatter_add_(1, labels[nearest], sims.clamp_min(0) + 1e-6)
        return float((votes.argmax(1).cpu() == self.dataset.test_y[self.knn_test]).float().mean())

    def state_dict(self) -> dict:
        return {"backbone": self.backbone.state_dict(), "projection": self.projection.state_dict(),
                "optimizer": self.optimizer.state_dict(), "epochs": self.epochs, "wall_s": self.wall_s,
                "config": asdict(self.config)}

    def load_state_dict(self, state: dict) -> None:
        mine = {k: v for k, v in asdict(self.config).items() if k != "epochs"}
        theirs = {k: v for k, v in state["config"].items() if k != "epochs"}
        if mine != theirs:
            changed = sorted(k for k in mine if mine[k] != theirs.get(k))
            raise ValueError(f"this state belongs to a pretraining with another config (differs in "
                             f"{', '.join(changed)}); resume with the config it was saved under")
        self.backbone.load_state_dict(state["backbone"])
        self.projection.load_state_dict(state["projection"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epochs, self.wall_s = state["epochs"], state["wall_s"]


def pretrain(dataset: ImageDataset, config: SimCLRConfig, device: torch.device | str = "cpu",
             reporter: Reporter | None = None) -> SimCLRRun:
    """Run SimCLR to config.epochs, reporting each epoch's metrics; returns the finished run
    (`backbone_state(run.backbone)` is what discovery loads)."""
    run = SimCLRRun(dataset, config, device)
    while not run.done:
        metrics = run.step()
        if reporter is not None:
            reporter(metrics)
    return run
