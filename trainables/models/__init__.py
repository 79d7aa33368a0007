"""Model registry: name -> constructor(num_classes, width, image_shape) -> nn.Module.

Every model exposes `features(x)` (penultimate features, shape (B, feature_dim)),
`feature_dim` and `head` (features to logits: the last Linear, for the ViT BatchNorm then Linear), so the discovery encoder can reuse any backbone.
"""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from .mlp import MLP
from .resnet import cifar_resnet18
from .vit import ViT

Constructor = Callable[..., nn.Module]


def resnet50(**kwargs) -> nn.Module:
    from .resnet50 import resnet50 as build  # torchvision's import costs seconds: only when built
    return build(**kwargs)


def resnet50_cifar(**kwargs) -> nn.Module:
    from .resnet50 import resnet50_cifar as build
    return build(**kwargs)

MODELS: dict[str, Constructor] = {
    "resnet18": cifar_resnet18,
    "mlp": MLP,
    "vit": ViT,
    "resnet50": resnet50,
    "resnet50_cifar": resnet50_cifar,
}


def build_model(name: str, num_classes: int, width: float = 1.0,
                image_shape: tuple[int, int, int] = (3, 32, 32)) -> nn.Module:
    """Build a registered model; an unknown name lists the valid ones."""
    try:
        constructor = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(sorted(MODELS))}") from None
    return constructor(num_classes=num_classes, width=width, image_shape=tuple(image_shape))

