"""The task encoder e(x) and the tasks it defines through fixed hyperplanes.

e(x) = BatchNorm1d(Linear(backbone.features(x))), no Linear bias and the BatchNorm bias fixed
at 0, so every hyperplane through the origin cuts the embedding cloud near its centre.
Task i: tau_i(x) = 1[w_i . e(x) > 0] (class 1 = the positive side of w_i, everywhere: soft
labels, hard labels, tables), w_i the i-th row of a seeded random orthogonal matrix.

BatchNorm of the encoder: during discovery every forward uses the batch's own statistics and
leaves the running statistics alone (`embed` works on copies of the buffers), so a
checkpointed step can be recomputed without side effects and the state depends on the
weights alone. Before labelling images in eval mode, `calibrate_bn` sets the running
statistics from a fixed set of training images, so labels do not depend on batch make-up.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.func import functional_call

from ..data import DeviceImages
from ..models import build_model


def orthogonal_hyperplanes(h_dim: int, n: int, seed: int) -> torch.Tensor:
    """The first n rows of a random orthogonal h_dim x h_dim matrix (Haar-distributed: QR of a
    Gaussian matrix with the signs of R's diagonal folded into Q), in float64."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(h_dim, h_dim, generator=g, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r)))[:, :n].T.contiguous()


class TaskEncoder(nn.Module):
    """Backbone features -> Linear(feature_dim, h_dim, bias=False) -> BatchNorm1d (bias fixed 0).

    A frozen backbone (SSL-regulated discovery) stays in eval mode with its weights out of every
    gradient; `backbone_input="unit"` turns the normalised batches every caller passes back into
    pixels in [0, 1] first (the statistics are buffers, set by `set_pixel_stats`)."""

    def __init__(self, arch: str, width: float, h_dim: int, n_linear_tasks: int,
                 image_shape: tuple[int, int, int], hyperplane_seed: int = 0, freeze_backbone: bool = False,
                 backbone_input: str = "dataset"):
        super().__init__()
        self.arch, self.width, self.h_dim, self.image_shape = arch, width, h_dim, tuple(image_shape)
        self.freeze_backbone = freeze_backbone
        self.backbone = build_model(arch, 1, width, image_shape)
        self.backbone.head = nn.Identity()  # only .features is used; keep no untrained weights around
        self.backbone.requires_grad_(not freeze_backbone)
        self.proj = nn.Linear(self.backbone.feature_dim, h_dim, bias=False)
        self.bn = nn.BatchNorm1d(h_dim)
        self.bn.bias.requires_grad_(False)  # stays 0: the paper's encoder has no learnt offset
        self.register_buffer("hyperplanes", orthogonal_hyperplanes(h_dim, n_linear_tasks, hyperplane_seed)
                             .to(torch.get_default_dtype()))
        if backbone_input == "unit":
            c = image_shape[0]
            self.register_buffer("pixel_shift", torch.zeros(1, c, 1, 1))
            self.register_buffer("pixel_scale", torch.ones(1, c, 1, 1))

    def set_pixel_stats(self, images: DeviceImages) -> None:
        """Undo `images`' normalisation before the backbone: x_unit = (x - shift) / (255 scale)."""
        if hasattr(self, "pixel_shift"):
            self.pixel_shift.copy_(images.shift.reshape(self.pixel_shift.shape))
            self.pixel_scale.copy_((1 / (255 * images.scale)).reshape(self.pixel_scale.shape))

    def train(self, mode: bool = True) -> "TaskEncoder":
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()  # its BatchNorm keeps the pretrained statistics
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "pixel_shift"):
            x = (x - self.pixel_shift) * self.pixel_scale
        return self.backbone.features(x)

    def norms(self) -> list[nn.Module]:
        """The BatchNorm layers whose statistics follow the weights (a frozen backbone's do not)."""
        skip = set(map(id, self.backbone.modules())) if self.freeze_backbone else set()
        return [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and id(m) not in skip]

    @property
    def n_tasks(self) -> int:
        return len(self.hyperplanes)

    def forward(self, x: torch.Tensor, from_features: bool = False) -> torch.Tensor:
        """e(x); `from_features`: x already holds the backbone's features (a frozen backbone's are
        computed once per batch, outside the unrolled graph)."""
        return self.bn(self.proj(x if from_features else self.features(x)))

    def trainable(self) -> dict[str, torch.Tensor]:
        """The parameters discovery trains (all but the fixed BatchNorm bias), by name."""
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def frozen(self) -> dict[str, torch.Tensor]:
        return {n: p for n, p in self.named_parameters() if not p.requires_grad}


def build_encoder(config, image_shape: tuple[int, int, int]) -> TaskEncoder:
    """The encoder of `config` (a DiscoveryConfig), built on the CPU under a private RNG seeded
    with config.encoder_seed, so its weights depend on the seed alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.encoder_seed)
        return TaskEncoder(config.arch, config.width, config.h_dim, config.n_linear_tasks,
                           tuple(image_shape), config.hyperplane_seed, config.freeze_backbone, config.backbone_input)


def embed(encoder: TaskEncoder, params: dict[str, torch.Tensor], x: torch.Tensor,
          from_features: bool = False) -> torch.Tensor:
    """e(x) with the given trainable parameters, batch-statistics BatchNorm and no side effects
    (BatchNorm updates land on throwaway copies of the buffers)."""
    state = {n: b.clone() for n, b in encoder.named_buffers()}
    state.update(encoder.frozen())
    state.update(params)
    was_training = encoder.training
    encoder.train()
    try:
        return functional_call(encoder, state, (x,), {"from_features": from_features})
    finally:
        encoder.train(was_training)


def task_scores(e: torch.Tensor, hyperplanes: torch.Tensor) -> torch.Tensor:
    """w_i . e(x) for every task: shape (B, n_tasks)."""
    return e @ hyperplanes.to(e.dtype).T


def soft_labels(e: torch.Tensor, w: torch.Tensor, temp: float) -> torch.Tensor:
    """softmax(temp * [-w.e, w.e]): column 1 is the positive side, as in the hard labels."""
    s = e @ w.to(e.dtype)
    return torch.softmax(temp * torch.stack([-s, s], dim=1), dim=1)


def hard_labels(e: torch.Tensor, hyperplanes: torch.Tensor) -> torch.Tensor:
    """1[w_i . e(x) > 0] for every task: long tensor (B, n_tasks)."""
    return (task_scores(e, hyperplanes) > 0).long()


@torch.no_grad()
def calibrate_bn(encoder: TaskEncoder, images: DeviceImages, idx: torch.Tensor, batch_size: int = 512,
                 dtype: torch.dtype = torch.float32) -> None:
    """Set the running statistics of every BatchNorm that follows the weights (`encoder.norms()`) to
    the average batch statistics over images `idx` (fixed order, so the result is a function of the weights), then leave eval mode."""
    bns = encoder.norms()
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    encoder.train()
    idx = idx.to(images.device)
    n = len(idx) if len(idx) % batch_size != 1 else len(idx) - 1  # BatchNorm needs 2+ images
    for i in range(0, n, batch_size):
        encoder(images.batch(idx[i:min(i + batch_size, n)]).to(dtype))
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    encoder.eval()


@torch.no_grad()
def encoder_labels(encoder: TaskEncoder, images: DeviceImages, idx: torch.Tensor | None = None,
                   batch_size: int = 2048, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Hard labels (N, n_tasks) of images `idx` (all when None), eval-mode BatchNorm; call
    calibrate_bn first so the running statistics belong to the current weights."""
    encoder.eval()
    idx = torch.arange(len(images), device=images.device) if idx is None else idx.to(images.device)
    out = [hard_labels(encoder(images.batch(idx[i:i + batch_size]).to(dtype)), encoder.hyperplanes)
           for i in range(0, len(idx), batch_size)]
    return torch.cat(out).cpu()
