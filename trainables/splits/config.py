"""Settings of splits: what a split trial trains on, and the random-network split's (the authors' ImageNet recipe)."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import ConfigError, check, param
from ..models import MODELS

# What a split trial trains on: the target's own labels, or the dataset's classes (the paper's
# 10-way use of the same splits).
LABELS = ("target", "classes")
PRECISIONS = ("fp32", "bf16")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

@dataclass(frozen=True)
class RandnetConfig:
    arch: str = param("resnet50", "architecture of the random scoring network (model registry name)",
                      choices=tuple(MODELS))
    width: float = param(1.0, "width factor of the scoring network (1 = standard)", gt=0)
    net_seed: int = param(0, "seed of the scoring network's random initial weights", ge=0)
    target_seed: int = param(0, "seed of the random half of the classes that forms the target", ge=0)
    batch_size: int = param(256, "images per forward pass of the scoring network", ge=1)
    image_size: int | None = param(224, "side of the square the images are resized and centre-cropped to, "
                                        "pixels; null = native size (all images must share it)", ge=1)
    crop_fraction: float = param(0.875, "with image_size: the crop's side as a fraction of the resized "
                                        "shorter side (0.875 = the standard 256 -> 224; 1 = no margin)",
                                 gt=0, le=1)
    batches_per_step: int = param(50, "batches scored per step() call (one Tune report each)", ge=1)
    decode_threads: int = param(4, "threads decoding each batch's images (PIL releases the GIL)", ge=1)
    precision: str = param("fp32", "compute precision: fp32, or bf16 autocast (use on CUDA)", choices=PRECISIONS)
    channels_last: bool = param(False, "feed the network channels-last images (faster on CUDA tensor cores)")
    mean: tuple[float, float, float] = param(IMAGENET_MEAN, "per-channel mean subtracted from the images, "
                                                            "fractions of 255 (ImageNet's)")
    std: tuple[float, float, float] = param(IMAGENET_STD, "per-channel std the images are divided by, "
                                                          "fractions of 255 (ImageNet's)")

    def __post_init__(self):
        check(self)
        for name in ("mean", "std"):  # tuples, also when read from YAML lists, so configs compare equal
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"RandnetConfig.mean={self.mean}, std={self.std} are invalid: expected three "
                              "numbers each (R, G, B), stds > 0")
