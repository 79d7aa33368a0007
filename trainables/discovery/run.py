"""A discovery run: meta-step after meta-step on the encoder, resumable from a state dict.

`DiscoveryRun` is the stateful core (one meta-step per `step`, state to and from a dict, so a
Tune trial or a notebook can drive it); `discover` runs it to the end.

Randomness: the draws of meta-step k (task index, inner batches) come from a generator seeded with
(step_seed, k), the agreement batch is the same at every step, and the inner pair's initialisation
is fixed, so the run's whole random state is its step counter: a resumed run replays exactly the
same steps.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from ..data import device_images
from ..cpu_memory import retain_freed_memory
from ..data import DeviceImages, ImageDataset, Split, make_split
from .backbone import load_backbone
from .config import DiscoveryConfig
from .encoder import TaskEncoder, build_encoder, calibrate_bn, embed, encoder_labels, hard_labels
from .quickeval import quick_agreement
from .stats import task_stats
from .unroll import InnerPair, MetaBatch, meta_objective

Reporter = Callable[[dict], None]
DTYPES = {"fp32": torch.float32, "bf16": torch.float32, "fp64": torch.float64}


def discovery_split(n_train: int, n_test: int, config: DiscoveryConfig) -> Split:
    """Inner batches from `train`, agreement batches from `holdout`, both inside the training part
    of the AS split: discovery never sees the AS holdout, so scoring its tasks there is unbiased."""
    as_split = make_split(n_train, n_test, config.holdout, config.split_seed)
    if config.outer_pool >= len(as_split.train):
        raise ValueError(f"outer_pool={config.outer_pool} leaves no images for the inner steps: the AS training "
                         f"part has {len(as_split.train)}; lower it")
    train = as_split.train[torch.randperm(len(as_split.train), generator=torch.Generator().manual_seed(config.split_seed))]
    pools = train[config.outer_pool:], train[:config.outer_pool]
    g = torch.Generator().manual_seed(config.subset_seed)
    inner, outer = (pool[torch.randperm(len(pool), generator=g)[:n]] if n else pool
                    for pool, n in zip(pools, (config.train_subset, config.holdout_subset)))
    return Split(train=inner.sort().values, holdout=outer.sort().values, test=as_split.test)


def draw_step(step: int, config: DiscoveryConfig, split: Split) -> tuple[int, list[torch.Tensor], torch.Tensor]:
    """Task index, inner-batch indices (one per inner step) and agreement-batch indices of meta-step `step`."""
    g = torch.Generator().manual_seed(config.step_seed * 1_000_003 + step)
    task = int(torch.randint(config.n_linear_tasks, (1,), generator=g))
    train, held = split.train, split.holdout
    inner = [train[torch.randint(len(train), (config.inner_batch_size,), generator=g)] for _ in range(config.nsteps)]
    # The authors' agreement loss uses one fixed batch, drawn here from step_seed alone. A fresh batch per
    # meta-step (taskdisc's earlier choice) measured no better: discovery-cpu's tasks AS 0.936 vs 0.941.
    fixed = torch.Generator().manual_seed(config.step_seed)
    outer = held[torch.randperm(len(held), generator=fixed)[:config.outer_batch_size]]
    return task, inner, outer


class DiscoveryRun:
    """One encoder trained by meta-steps under `config`, on the images of `train_images`."""

    def __init__(self, train_images: DeviceImages, test_images: DeviceImages, config: DiscoveryConfig,
                 backbone: str | None = None):
        """`backbone`: where to read config.backbone_ckpt's weights (a worker's copy of the file);
        defaults to config.backbone_ckpt itself."""
        self.train_images, self.test_images, self.config = train_images, test_images, config
        self.device, self.dtype = train_images.device, DTYPES[config.precision]
        retain_freed_memory(self.device)
        shape = tuple(train_images.images.shape[1:])
        self.split = discovery_split(len(train_images), len(test_images), config)
        self.encoder: TaskEncoder = build_encoder(config, shape)
        if config.backbone_ckpt:
            load_backbone(self.encoder, backbone or config.backbone_ckpt)
        self.encoder.to(self.device, self.dtype).set_pixel_stats(train_images)
        self.pair = InnerPair(config.inner_arch, config.inner_width, shape, config.pair_seed, self.device,
                              self.dtype)
        self.optimizer = torch.optim.Adam(list(self.encoder.trainable().values()), lr=config.outer_lr,
                                          fused=self.device.type == "cuda" or None)
        g = torch.Generator().manual_seed(config.subset_seed + 1)
        self.probe_idx = self.split.train[torch.randperm(len(self.split.train), generator=g)[:config.probe_size]]
        n_cal = config.calibration_size or len(self.split.train)
        calibration = torch.randperm(len(self.split.train), generator=g)[:n_cal]
        self.calibration_idx = self.split.train[calibration].sort().values
        self.steps, self.wall_s = 0, 0.0

    @property
    def done(self) -> bool:
        return self.steps >= self.config.meta_steps

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        return self.train_images.batch(idx.to(self.device)).to(self.dtype)

    def step(self) -> dict[str, float]:
        """One meta-step (one Adam step on the encoder); returns its metrics."""
        start, cfg = time.perf_counter(), self.config
        task, inner, outer = draw_step(self.steps, cfg, self.split)
        batch = MetaBatch(tuple(self.batch(i) for i in inner), self.batch(outer))
        self.encoder.train()
        out = meta_objective(self.encoder, self.encoder.trainable(), self.pair, batch, task, cfg,
                             cfg.checkpoints())
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()  # reentrant checkpointing supports .backward() only, not autograd.grad
        self.optimizer.step()
        self.steps += 1
        self.wall_s += time.perf_counter() - start
        metrics = {"step": self.steps, "discovery/task": task, "discovery/loss": float(out.loss.detach()),
                   "discovery/agreement_loss": float(out.agreement.detach()),
                   "discovery/uniformity_loss": float(out.uniformity.detach()),
                   "perf/meta_steps_per_s": self.steps / max(self.wall_s, 1e-9)}
        metrics.update(self.probe_stats())
        if cfg.quick_eval_every and (self.steps % cfg.quick_eval_every == 0 or self.done):
            metrics.update(self.quick_eval())
        return metrics

    @torch.no_grad()
    def probe_stats(self) -> dict[str, float]:
        """Balance and similarity of all tasks on the fixed probe batch (batch-statistics BatchNorm)."""
        e = embed(self.encoder, self.encoder.trainable(), self.batch(self.probe_idx))
        return task_stats(hard_labels(e, self.encoder.hyperplanes).cpu())

    def calibrate(self) -> None:
        """Running BatchNorm statistics of the current weights, from the fixed calibration images."""
        calibrate_bn(self.encoder, self.train_images, self.calibration_idx, self.config.inner_batch_size, self.dtype)

    def quick_eval(self) -> dict[str, float]:
        self.calibrate()
        return quick_agreement(self.encoder, self.train_images, self.test_images, self.config, self.dtype)

    def labels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Hard labels (N, n_tasks) of every training and every test image, after calibration."""
        self.calibrate()
        return (encoder_labels(self.encoder, self.train_images, dtype=self.dtype),
                encoder_labels(self.encoder, self.test_images, dtype=self.dtype))

    def state_dict(self) -> dict:
        return {"encoder": self.encoder.state_dict(), "optimizer": self.optimizer.state_dict(),
                "steps": self.steps, "wall_s": self.wall_s, "config": asdict(self.config)}

    def load_state_dict(self, state: dict, retuned: tuple[str, ...] = ()) -> None:
        """Resume from `state`. `retuned` names fields in which this run's config may deliberately
        differ from the state's (a hyperparameter search continuing another run's encoder under new
        hyperparameters): the encoder and Adam moments are taken over, Adam's lr becomes this config's
        outer_lr, and the next meta-step uses this config."""
        mine, theirs = _trajectory_fields(asdict(self.config), retuned), _trajectory_fields(state["config"], retuned)
        if mine != theirs:
            changed = sorted(k for k in mine if mine[k] != theirs.get(k))
            raise ValueError(f"this state belongs to a discovery run with another config (differs in "
                             f"{', '.join(changed)}); resume with the config it was saved under")
        self.encoder.load_state_dict(state["encoder"])
        self.optimizer.load_state_dict(state["optimizer"])  # restores the saved lr too
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.outer_lr
        self.steps, self.wall_s = state["steps"], state["wall_s"]


def _trajectory_fields(config: dict, retuned: tuple[str, ...] = ()) -> dict:
    """The config fields that shape the run's trajectory: a resumed run may extend meta_steps or
    change its quick evaluation (and the `retuned` fields), nothing else."""
    return {k: v for k, v in config.items()
            if k != "meta_steps" and not k.startswith("quick_eval") and k not in retuned}


@dataclass(frozen=True)
class DiscoveryResult:
    """A finished discovery: the calibrated encoder (eval mode), the hard labels of every task on
    every training and test image (N, n_tasks), the last step's metrics and the run's cost."""
    encoder: TaskEncoder
    config: DiscoveryConfig
    train_labels: torch.Tensor
    test_labels: torch.Tensor
    metrics: dict
    steps: int
    wall_s: float


def discover(dataset: ImageDataset, config: DiscoveryConfig, device: torch.device | str = "cpu",
             reporter: Reporter | None = None, state: dict | None = None) -> DiscoveryResult:
    """Run discovery to config.meta_steps (from `state`, a DiscoveryRun.state_dict, when given),
    reporting each meta-step's metrics, and return the encoder and its task labels."""
    train, test = device_images(dataset, device)
    run = DiscoveryRun(train, test, config)
    if state is not None:
        run.load_state_dict(state)
    metrics: dict = {}
    while not run.done:
        metrics = run.step()
        if reporter is not None:
            reporter(metrics)
    train_labels, test_labels = run.labels()
    return DiscoveryResult(run.encoder, config, train_labels, test_labels, metrics, run.steps, run.wall_s)
