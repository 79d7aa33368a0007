"""A pair of networks (of one architecture, or two for a cross-architecture AS), from two seeds,
trained on the same batches.

One optimiser covers both networks: Adam and SGD are per-parameter, so this equals two
optimisers, in one fused/foreach update instead of two.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from .cpu_memory import retain_freed_memory
from .models import build_model
from .protocol import Protocol


def init_seeds(seed: int) -> tuple[int, int]:
    """Initialisation seeds of the two networks of pair `seed`: distinct for every pair."""
    return 2 * seed, 2 * seed + 1


def seeded_model(protocol: Protocol, num_classes: int, image_shape, seed: int, arch: str | None = None
                 ) -> nn.Module:
    """Build network `arch` (default the protocol's first) on the CPU under a private RNG, so the
    weights depend on the seed alone (not the device)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(arch or protocol.arch, num_classes, protocol.width, image_shape)


# Fused kernels update every parameter in one pass. On the CPU torch would otherwise fall back to
# a per-parameter loop (its foreach default is CUDA-only); fused Adam measured faster there too.
FUSED_DEVICES = ("cuda", "cpu")


def make_optimizer(params, protocol: Protocol, device: torch.device) -> torch.optim.Optimizer:
    fused = device.type in FUSED_DEVICES or None
    if protocol.optimizer == "adam":
        return torch.optim.Adam(params, lr=protocol.lr, weight_decay=protocol.weight_decay, fused=fused)
    return torch.optim.SGD(params, lr=protocol.lr, momentum=protocol.momentum,
                           weight_decay=protocol.weight_decay, fused=fused)


def autocast(protocol: Protocol, device: torch.device):
    if protocol.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class Pair:
    """Two networks and one optimiser; `train_step` and `predict` work on device tensors."""

    def __init__(self, protocol: Protocol, num_classes: int, image_shape, seeds: tuple[int, int],
                 device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.protocol = protocol.on(self.device.type)  # precision auto, for a pair made outside a spec
        retain_freed_memory(self.device)
        fmt = torch.channels_last if protocol.channels_last else torch.preserve_format
        archs = protocol.archs[:len(seeds)]
        self.nets = nn.ModuleList([seeded_model(protocol, num_classes, image_shape, s, a) for s, a in zip(seeds, archs)])
        self.nets.to(self.device, memory_format=fmt)
        self.optimizer = make_optimizer(self.nets.parameters(), protocol, self.device)
        self.forwards = [torch.compile(n) if protocol.compiles(a) else n for n, a in zip(self.nets, archs)]

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step of both networks on (x, y); returns per-network summed loss and
        correct count as device tensors, so the caller syncs once per epoch, not per step."""
        self.nets.train()
        with autocast(self.protocol, self.device):
            logits = [f(x) for f in self.forwards]
            losses = torch.stack([F.cross_entropy(z.float(), y) for z in logits])
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        self.optimizer.step()
        correct = torch.stack([(z.argmax(1) == y).sum() for z in logits])
        return losses.detach() * len(y), correct

    @torch.inference_mode()
    def predict(self, batches) -> torch.Tensor:
        """Argmax predictions of both networks, shape (2, N), over an iterable of input batches."""
        self.nets.eval()
        out = []
        with autocast(self.protocol, self.device):
            for x in batches:
                out.append(torch.stack([f(x).argmax(1) for f in self.forwards]))
        return torch.cat(out, dim=1)

    def state_dict(self) -> dict:
        return {"nets": self.nets.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.nets.load_state_dict(state["nets"])
        self.optimizer.load_state_dict(state["optimizer"])
