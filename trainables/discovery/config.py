"""The task-discovery configuration. Defaults are the paper's main run (section 3 of DESIGN.md)
where the paper fixes a value; the rest (meta_steps, quick evaluation) are ours, marked so."""
from __future__ import annotations

from dataclasses import dataclass

from ..config import ConfigError, check, param
from ..models import MODELS

DATA_MODES = ("split", "shared")
CHECKPOINTING = ("auto", "on", "off")
# fp64 exists for gradient checks (finite differences need it); bf16 autocasts the forward passes.
PRECISIONS = ("fp32", "bf16", "fp64")
BACKBONE_INPUTS = ("dataset", "unit")


@dataclass(frozen=True)
class DiscoveryConfig:
    arch: str = param("resnet18", "encoder backbone architecture (model registry name)", choices=tuple(MODELS))
    width: float = param(1.0, "encoder backbone width factor (1 = paper)", gt=0, le=16)
    pair_arch: str | None = param(None, "architecture of the two unrolled networks whose agreement is "
                                        "optimised; null = same as arch", choices=tuple(MODELS))
    pair_width: float | None = param(None, "width factor of the unrolled networks; null = same as width", gt=0, le=16)
    backbone_ckpt: str | None = param(None, "plain state dict (.pt) of the encoder's backbone, e.g. a SimCLR "
                                            "pretraining's backbone.pt (head keys ignored); null = random init")
    freeze_backbone: bool = param(False, "keep the backbone fixed (eval-mode BatchNorm, no gradients, no backward "
                                         "through it): only the projection to h_dim learns (the authors' "
                                         "SSL-regulated discovery)")
    backbone_input: str = param("dataset", "what the backbone sees: dataset = images normalised by the dataset's "
                                           "channel mean and std (as the pair); unit = pixels in [0, 1], as "
                                           "backbones pretrained without normalisation (SimCLR here, the "
                                           "authors' SSL encoders)", choices=BACKBONE_INPUTS)
    h_dim: int = param(32, "task-embedding dimension (encoder output), units", ge=1)
    n_linear_tasks: int = param(32, "number of fixed hyperplanes = discovered tasks, <= h_dim", ge=1)
    task_temp: float = param(5.0, "temperature multiplying w.e(x) in the soft labels", gt=0)
    uniformity_coef: float = param(25.0, "weight of the uniformity loss in the outer loss (README: 25)", ge=0)
    uniformity_t: float = param(2.0, "t of the uniformity loss log mean exp(-t |z-z'|^2)", gt=0)
    nsteps: int = param(50, "unrolled inner SGD steps per meta-step", ge=1)
    inner_lr: float = param(0.01, "inner SGD learning rate", gt=0)
    inner_batch_size: int = param(512, "images per inner step (split mode: half to each network)", ge=4)
    outer_batch_size: int = param(512, "held-out images on which the agreement loss is measured", ge=2)
    outer_lr: float = param(1e-3, "Adam learning rate on the encoder", gt=0)
    meta_steps: int = param(2000, "total meta-steps (ours; one Adam step on the encoder each)", ge=0)
    data_mode: str = param("split", "inner batches: split = each network gets its own half (authors' "
                                    "default), shared = both see the whole batch", choices=DATA_MODES)
    checkpointing: str = param("auto", "checkpoint each inner step: auto = on unless both archs are mlp "
                                       "(measured: ~7x less memory for conv nets; costs memory for MLPs)",
                               choices=CHECKPOINTING)
    hyperplane_seed: int = param(0, "seed of the random orthogonal hyperplanes", ge=0)
    encoder_seed: int = param(0, "seed of the encoder's initial weights", ge=0)
    pair_seed: int = param(0, "seed of the fixed pair of inner initialisations (trainables.pair.init_seeds)",
                           ge=0)
    step_seed: int = param(0, "seed of the per-step draws (task index, batches); step k's draws depend on "
                              "(step_seed, k) only", ge=0)
    precision: str = param("fp32", "compute precision: fp32, bf16 autocast (CUDA), fp64 (gradient checks)",
                           choices=PRECISIONS)
    holdout: int = param(5000, "training images of the AS holdout, never seen by discovery (same split as "
                               "Protocol), images", ge=1)
    split_seed: int = param(0, "seed of the AS train/holdout split (same convention as Protocol)", ge=0)
    outer_pool: int = param(5000, "images of the AS training part from which agreement batches are drawn; "
                                  "the rest feed the inner steps", ge=2)
    train_subset: int | None = param(None, "inner batches come from a seeded subset of this many training "
                                           "images; null = all", ge=4)
    holdout_subset: int | None = param(None, "agreement batches come from this many images of the outer "
                                             "pool; null = all", ge=2)
    subset_seed: int = param(0, "seed of the subsets above", ge=0)
    probe_size: int = param(2048, "fixed training images on which task balance and similarity are measured",
                            ge=2)
    calibration_size: int | None = param(10000, "training images whose batch statistics set the encoder's "
                                                "BatchNorm running statistics before labelling; null = all",
                                         ge=2)
    quick_eval_every: int | None = param(None, "quick agreement score every this many meta-steps (ours); "
                                               "null = never", ge=1)
    quick_eval_tasks: int = param(4, "tasks (the first ones) scored by the quick evaluation", ge=1)
    quick_eval_epochs: int = param(5, "epochs of the quick evaluation's short AS protocol", ge=1)
    quick_eval_train_subset: int | None = param(10000, "training images of the quick evaluation; null = all",
                                                ge=2)
    quick_eval_holdout_subset: int | None = param(2000, "held-out images of the quick evaluation; null = all",
                                                  ge=1)

    def __post_init__(self):
        check(self)
        if self.n_linear_tasks > self.h_dim:
            raise ConfigError(f"DiscoveryConfig.n_linear_tasks={self.n_linear_tasks} is invalid: the hyperplanes "
                              f"are rows of an orthogonal h_dim x h_dim matrix, so use at most h_dim={self.h_dim}")
        if self.data_mode == "split" and self.inner_batch_size % 2:
            raise ConfigError(f"DiscoveryConfig.inner_batch_size={self.inner_batch_size} is invalid: split mode "
                              "halves every batch, so use an even size")

    @property
    def inner_arch(self) -> str:
        return self.pair_arch or self.arch

    @property
    def inner_width(self) -> float:
        return self.pair_width if self.pair_width is not None else self.width

    def checkpoints(self) -> bool:
        """Whether to checkpoint each inner step. MLP activations are small next to the extra
        recomputation buffers, so checkpointing them costs memory; conv nets/ViT save ~7x."""
        if self.checkpointing != "auto":
            return self.checkpointing == "on"
        return not (self.arch == "mlp" and self.inner_arch == "mlp")
