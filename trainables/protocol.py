"""The agreement-score protocol: how a pair is trained and scored. Defaults are the paper's."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .config import check, param
from .models import MODELS

PRECISIONS = ("auto", "fp32", "bf16")
OPTIMIZERS = ("adam", "sgd")
COMPILE_MODES = ("auto", "on", "off")
# Fields added after sweeps were recorded: left out of a protocol's identity while off (None), so
# those sweeps keep their trial keys and resume.
LATER_FIELDS = ("arch2",)


@dataclass(frozen=True)
class Protocol:
    arch: str = param("resnet18", "network architecture of both networks (model registry name)",
                      choices=tuple(MODELS))
    arch2: str | None = param(None, "architecture of the pair's second network for a cross-architecture "
                                    "AS (e.g. arch resnet18, arch2 mlp); null = arch", choices=tuple(MODELS))
    width: float = param(1.0, "width factor applied to every layer's channels (1 = paper)", gt=0, le=16)
    epochs: int = param(100, "training epochs (passes over the training part)", ge=1)
    batch_size: int = param(512, "training batch size, images per step (both networks see the same batch)",
                            ge=2)
    lr: float = param(1e-3, "learning rate of the optimiser over both networks", gt=0)
    optimizer: str = param("adam", "optimiser over both networks' parameters", choices=OPTIMIZERS)
    momentum: float = param(0.9, "SGD momentum (ignored by adam)", ge=0, lt=1)
    weight_decay: float = param(0.0, "L2 weight decay, per step", ge=0)
    precision: str = param("auto", "compute precision: fp32, bf16 autocast, or auto = bf16 on CUDA and fp32 "
                                   "elsewhere (resolved in the spec before any trial key is made)",
                           choices=PRECISIONS)
    channels_last: bool = param(False, "store conv activations channels-last (faster on CUDA tensor cores)")
    compile: str = param("auto", "torch.compile the networks: auto = conv nets only, on, off",
                         choices=COMPILE_MODES)
    early_stop_acc: float | None = param(None, "stop once both networks' training accuracy (fraction) "
                                               "reaches this; null = train all epochs", gt=0, le=1)
    eval_batch_size: int = param(2048, "batch size for held-out and test predictions, images", ge=1)
    holdout: int = param(5000, "training images held out to measure agreement, images", ge=1)
    split_seed: int = param(0, "seed of the random train/holdout split", ge=0)
    train_subset: int | None = param(None, "use a seeded random subset of this many training images; "
                                           "null = all", ge=2)
    holdout_subset: int | None = param(None, "use this many held-out images; null = all", ge=1)
    test_subset: int | None = param(None, "use this many test images; null = all", ge=1)
    subset_seed: int = param(0, "seed of the subsets above", ge=0)

    def __post_init__(self):
        check(self)

    @property
    def archs(self) -> tuple[str, str]:
        """The architectures of the pair's two networks."""
        return self.arch, self.arch2 or self.arch

    @property
    def pair_name(self) -> str:
        """'resnet18', or 'resnet18+mlp' for a cross-architecture pair."""
        return "+".join(self.archs) if self.archs[0] != self.archs[1] else self.arch

    def compiles(self, arch: str | None = None) -> bool:
        """Whether to compile (network `arch`, default the first): measured 1.75x on a CPU ResNet, no
        gain on the MLP (see bench/)."""
        return self.compile == "on" or (self.compile == "auto" and (arch or self.arch) != "mlp")

    def on(self, device: str) -> "Protocol":
        """This protocol as it runs on `device` ('cpu', 'cuda', 'cuda:1'): precision auto made bf16 on CUDA
        (AS under bf16 agreed with fp32 within seed noise: README) and fp32 elsewhere (bf16 measured 4.9x
        slower on a CPU)."""
        if self.precision != "auto":
            return self
        return dataclasses.replace(self, precision="bf16" if device.startswith("cuda") else "fp32")

    def identity(self) -> dict:
        """What makes this protocol's results, as plain values (what its hash covers)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if not (k in LATER_FIELDS and v is None)}


# Named protocols (`protocol: {preset: NAME}` in a spec; fields given beside it win), each with
# where it comes from or what it was measured to keep.
PRESETS: dict[str, dict] = {
    # The quickstart's: a narrow MLP pair on CIFAR-10 subsets, a few minutes for 8 tasks on 2 CPU cores.
    "quickstart-cpu": {"arch": "mlp", "width": 0.25, "epochs": 12, "train_subset": 10000, "holdout_subset": 2000,
                       "test_subset": 2000, "compile": "off"},
    # The fidelity study's best candidate at least 3x cheaper (specs/fidelity-cpu.yaml with seeds 0-2, 8 real and
    # 8 random tasks): the quickstart's pair stopped at 3 of its 12 epochs, 4x cheaper. Each of its seeds against
    # the mean of the reference's other seeds: Spearman 0.870, as good as the reference (its own seeds against
    # the mean of its others: 0.805, 95% interval [0.502, 0.932]); within a kind neither ranks reliably (real
    # 0.611 vs the reference's 0.468, random 0.335 vs -0.056). For ranking tasks, not for AS values: its scores
    # are higher (mean |AS difference| 0.061, max 0.108).
    "ranking-cpu": {"arch": "mlp", "width": 0.25, "epochs": 3, "train_subset": 10000, "holdout_subset": 2000,
                    "test_subset": 2000, "compile": "off"},
}
