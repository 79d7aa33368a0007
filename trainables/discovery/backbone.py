"""Loading a pretrained backbone (a plain state dict) into the task encoder.

The file is data: loaded with weights_only=True. Keys of a classification or projection head are
ignored (the encoder has neither); any other key the encoder lacks, or lacks in the file, or whose
shape differs, is an error naming them, since a backbone of another architecture or width would
otherwise load half its weights silently.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..config import ConfigError
from .encoder import TaskEncoder

HEAD_PREFIXES = ("head.", "fc.", "projection.", "projection_head.")
SHOWN = 4  # keys named per kind of mismatch


def _listed(keys: list[str]) -> str:
    more = f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def read_backbone(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in `path`; ConfigError if it is missing, unreadable or not a flat dict of tensors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"backbone_ckpt {path} does not exist; pass a .pt state dict, e.g. the backbone.pt "
                          "a pretraining sweep exports")
    try:  # weights_only: a checkpoint is data, never code
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError (not a zip), EOFError (truncated)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"backbone_ckpt {path} is not a readable state dict ({first[:160]}); pass a .pt file "
                          "saved with torch.save(model.state_dict())") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ConfigError(f"backbone_ckpt {path} is not a plain state dict (name -> tensor); save "
                          "model.state_dict() itself, not a training checkpoint around it")
    return state


def load_backbone(encoder: TaskEncoder, path: str | Path) -> None:
    """Load the backbone weights of `path` into `encoder.backbone` (ConfigError on any mismatch)."""
    state = {k: v for k, v in read_backbone(path).items() if not k.startswith(HEAD_PREFIXES)}
    own = encoder.backbone.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = sorted(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in set(own) & set(state)
                    if state[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        parts = [f"missing {_listed(missing)}" if missing else "", f"unexpected {_listed(unexpected)}" if unexpected
                 else "", f"shapes differ: {_listed(shapes)}" if shapes else ""]
        raise ConfigError(f"backbone_ckpt {path} does not fit a {encoder.arch} backbone of width {encoder.width} "
                          f"({'; '.join(p for p in parts if p)}); set discovery.arch and width to the "
                          "architecture it was trained as")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(state[k])
