"""What every sweep spec has: its name, data, resources, fault tolerance, tracking and folder.

Every kind's spec (`orchestrator/kinds/<kind>/spec.py`) extends `SweepBase`. Relative paths are taken
from the current directory and stored absolute, because Tune trials run in their own working directories.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from trainables.config import ConfigError, check, param
from trainables.data import DATASETS, ROOT_ENVS, DatasetError, dataset_identity

from orchestrator.specs.io import SpecError
from orchestrator.specs.task_sets import NAME, NAME_RULE, TaskSet


@dataclass(frozen=True)
class DatasetSpec:
    name: str = param("cifar10", "dataset registry name", choices=tuple(DATASETS))
    root: str | None = param(None, "dataset path (a folder or archive, see README); null = $TASKDISC_CIFAR10 "
                                   "or $TASKDISC_TINY_IMAGENET, else the cache (cifar10: downloaded there)")
    download: bool = param(True, "download through torchvision when the dataset is missing (cifar10 only)")
    image_size: int | None = param(None, "side the images are resized to, pixels (tiny-imagenet only; "
                                         "null = 32, the authors'; 64 = native)", ge=4)


@dataclass(frozen=True)
class Resources:
    cpus: float = param(1.0, "CPU cores reserved per trial", gt=0)
    gpus: float = param(0.0, "GPUs per trial; a fraction packs several pairs on one GPU", ge=0)


@dataclass(frozen=True)
class Tracking:
    experiment: str | None = param(None, "MLflow experiment name; null = the spec's name")
    uri: str | None = param(None, "MLflow tracking URI; null = sqlite:///<cwd>/mlflow.db")


@dataclass(frozen=True)
class SweepBase:
    """What every sweep spec has: its name, data, resources, fault tolerance, tracking and folder."""
    name: str = param("sweep", "spec name: names the sweep folder, MLflow parent run and trial runs")
    dataset: DatasetSpec = param(DatasetSpec(), "the images")
    resources: Resources = param(Resources(), "resources per trial")
    concurrency: int | None = param(None, "most trials at once; null = as many as resources allow", ge=1)
    max_failures: int = param(2, "restarts of a trial whose worker dies, from its last checkpoint", ge=0)
    checkpoint_every: int = param(1, "Tune steps between trial checkpoints (AS trial: an epoch; discovery: "
                                     "steps_per_report meta-steps)", ge=1)
    tracking: Tracking = param(Tracking(), "MLflow tracking")
    output_dir: str = param("runs", "folder holding one sub-folder per sweep (record, exports, Tune state)")
    storage: str | None = param(None, "where Tune keeps trial checkpoints: on a multi-node cluster a folder "
                                      "or URI every node reaches (s3://bucket/prefix, an NFS mount); "
                                      "null = <sweep folder>/tune, one machine only")

    def __post_init__(self):
        check(self)
        if not NAME.match(self.name):
            shown = self.name if len(self.name) <= 60 else f"{self.name[:40]}...({len(self.name)} characters)"
            raise ConfigError(f"name={shown!r} is invalid: {NAME_RULE}")

    def trials(self) -> list:
        return list(self.iter_trials())

    def iter_trials(self):
        """The trials one by one (a grid of millions is never held in memory at once)."""
        raise NotImplementedError

    def trial_count(self) -> int:
        """How many trials the spec expands to, without expanding it."""
        return len(self.trials())

    def task_sets(self) -> tuple[tuple[str, "TaskSet"], ...]:
        """(spec key, set) of every task set the spec reads, for `preflight`."""
        return ()

    def scheduler_config(self) -> tuple[str, dict] | None:
        """(name in schedulers.SCHEDULERS, its keyword arguments), or None: every trial runs to the end."""
        return None

    def resumable(self, done: set[str]) -> set[str]:
        """The recorded trial keys a rerun skips: all of them, the trials being independent."""
        return done

    def preflight(self, origin: str):
        """Check the inputs in the driver before Ray starts (SpecError naming the problem): the
        dataset decoded once into the cache the trials read, every task set built against it.
        Returns the dataset."""
        from orchestrator.specs.preflight import check_task_sets, driver_dataset
        dataset = driver_dataset(self.dataset, origin)
        check_task_sets(self.task_sets(), dataset, origin)
        return dataset

    @property
    def sweep_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    @property
    def device(self) -> str:
        return "cuda" if self.resources.gpus > 0 else "cpu"

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or self.name

    @property
    def data_id(self) -> str:
        """The dataset's identity (name and content), part of every trial's key."""
        d = self.dataset
        return dataset_identity(d.name, d.root, d.download, d.image_size)


def resolve_paths(spec):
    """Make every path absolute (trials run elsewhere) and fill the defaults taken from the environment."""
    root = spec.dataset.root or os.environ.get(ROOT_ENVS.get(spec.dataset.name, ""))
    dataset = dataclasses.replace(spec.dataset, root=str(Path(root).expanduser().resolve()) if root else None)
    uri = spec.tracking.uri or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{Path(uri[len('sqlite:///'):]).resolve()}"
    storage = spec.storage if spec.storage is None or "://" in spec.storage else str(Path(spec.storage).resolve())
    return dataclasses.replace(spec, dataset=dataset, output_dir=str(Path(spec.output_dir).resolve()), storage=storage,
                               tracking=dataclasses.replace(spec.tracking, uri=uri,
                                                            experiment=spec.experiment))


def checked_data(spec, origin: str):
    """`spec` if its dataset can be had (a cheap check, no decoding), else a SpecError."""
    try:
        spec.data_id
    except DatasetError as e:
        raise SpecError(f"{origin}: dataset: {e}") from None
    return spec
