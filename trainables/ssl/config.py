"""The SimCLR pretraining configuration. Defaults follow SimCLR's CIFAR-10 recipe (Chen et al. 2020,
appendix B.9: crops down to 8% of the image, colour jitter at strength 0.5, no blur at 32 px,
temperature 0.5, a 2-layer projection to 128 dimensions, SGD with momentum and a cosine schedule)."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import check, param
from ..models import MODELS


@dataclass(frozen=True)
class SimCLRConfig:
    arch: str = param("resnet18", "backbone architecture (model registry name); discovery's encoder uses the same",
                      choices=tuple(MODELS))
    width: float = param(1.0, "backbone width factor (1 = the registry's default size)", gt=0, le=16)
    epochs: int = param(100, "passes over the pretraining images", ge=1)
    batch_size: int = param(512, "images per step (two views each, so 2x this many forward passes)", ge=4)
    lr: float = param(0.06, "SGD learning rate per 256 images (scaled linearly with batch_size), cosine-decayed "
                            "to 0 over the epochs", gt=0)
    momentum: float = param(0.9, "SGD momentum", ge=0, lt=1)
    weight_decay: float = param(5e-4, "SGD weight decay (L2, on every parameter)", ge=0)
    temperature: float = param(0.5, "NT-Xent temperature (lightly's NTXentLoss)", gt=0)
    proj_hidden_dim: int = param(512, "projection head's hidden width (lightly's SimCLRProjectionHead), units", ge=1)
    proj_out_dim: int = param(128, "projection head's output width: where the loss compares views, units", ge=1)
    min_scale: float = param(0.08, "smallest random-resized-crop area, as a fraction of the image", gt=0, le=1)
    cj_strength: float = param(0.5, "colour-jitter strength (SimCLR: 0.5 on CIFAR-10, 1.0 on ImageNet)", ge=0)
    gaussian_blur: float = param(0.0, "probability of Gaussian blur per view (SimCLR: 0 at 32 px, 0.5 at 224)",
                                 ge=0, le=1)
    holdout: int = param(5000, "training images of the AS holdout, never seen by pretraining (same split as "
                               "Protocol and discovery), images", ge=1)
    split_seed: int = param(0, "seed of the AS train/holdout split (same convention as Protocol)", ge=0)
    train_subset: int | None = param(None, "pretrain on a seeded subset of this many images of the AS training "
                                           "part; null = all of it", ge=4)
    seed: int = param(0, "seed of the weights, the image order and the augmentations; epoch e's draws "
                         "depend on (seed, e) only", ge=0)
    loader_workers: int = param(0, "processes making the augmented views (a CPU job: at 32 px one core makes "
                                   "~800 view pairs/s); 0 = in the trial's own process", ge=0)
    knn_images: int = param(5000, "labelled training images of the k-NN probe's memory bank (a check that "
                                  "the features learned something; labels are used for nothing else)", ge=1)
    knn_test_images: int = param(2000, "test images the k-NN probe classifies", ge=1)

    def __post_init__(self):
        check(self)
