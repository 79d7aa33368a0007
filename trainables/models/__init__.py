"""Model registry: name -> constructor(num_classes, width, image_shape) -> nn.Module.

Every model exposes `features(x)` (penultimate features, shape (B, feature_dim)),
`feature_dim` and `head` (features to logits: the last Linear, for the ViT BatchNorm then Linear), so the discovery encoder can reuse any backbone.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch.nn as nn

Constructor = Callable[..., "nn.Module"]


def _lazy(module: str, name: str) -> Constructor:
    """The constructor `name` of `module`, imported when first called: a spec names models without
    importing PyTorch (or torchvision, seconds more for the ResNet-50s)."""
    def build(**kwargs) -> nn.Module:
        return getattr(importlib.import_module(module, __name__), name)(**kwargs)
    build.__name__ = name
    return build


MODELS: dict[str, Constructor] = {
    "resnet18": _lazy(".resnet", "cifar_resnet18"),
    "mlp": _lazy(".mlp", "MLP"),
    "vit": _lazy(".vit", "ViT"),
    "resnet50": _lazy(".resnet50", "resnet50"),
    "resnet50_cifar": _lazy(".resnet50", "resnet50_cifar"),
}


def build_model(name: str, num_classes: int, width: float = 1.0,
                image_shape: tuple[int, int, int] = (3, 32, 32)) -> nn.Module:
    """Build a registered model; an unknown name lists the valid ones."""
    try:
        constructor = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(sorted(MODELS))}") from None
    return constructor(num_classes=num_classes, width=width, image_shape=tuple(image_shape))

