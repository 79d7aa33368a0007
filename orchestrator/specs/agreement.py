"""The agreement-sweep spec: what to score (tasks x seeds x protocol grid), where, and how to track it.

A spec is YAML loaded into frozen dataclasses; `trials()` expands it into one `TrialSpec` per
(task, seed, protocol point). Relative paths are taken from the current directory and stored
absolute, because Tune trials run in their own working directories.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from trainables.config import ConfigError, check, param
from trainables.data import DATASETS, HOLDOUT_RULE, ROOT_ENVS, DatasetError, dataset_identity
from trainables.protocol import Protocol

from orchestrator.specs.indices import parse_seeds
from orchestrator.specs.io import SpecError, apply_override, build, digest, grid_label, read_yaml, to_plain
from orchestrator.specs.grids import grid_of, on_device, protocol_grid
from orchestrator.specs.fidelity import Fidelity, fidelity_data, parse_fidelity, point_names
from orchestrator.specs.search import Search
from orchestrator.specs.task_sets import NAME, NAME_RULE, TaskSet, task_sets, task_sets_data

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


@dataclass(frozen=True)
class SweepSpec(SweepBase):
    protocols: tuple[Protocol, ...] = param((Protocol(),), "protocol grid points (from `protocol:`)")
    tasks: tuple[TaskSet, ...] = param((), "task sets to score (from `tasks:`)")
    seeds: tuple[int, ...] = param((0,), "pair seeds: one pair of networks per seed and task, e.g. 0-4 or [0, 7]")
    search: Search = param(Search(), "top-k search: stop trials of poor tasks early")
    fidelity: Fidelity = param(Fidelity(), "fidelity study: protocols[1:] are named cheaper candidates of protocols[0]")

    def __post_init__(self):
        super().__post_init__()
        names = point_names(self.fidelity, len(self.protocols))
        object.__setattr__(self, "protocols", on_device(self.protocols, self.device, names))
        self.search.check_protocols(self.protocols)

    def scheduler_config(self) -> tuple[str, dict] | None:
        asha = self.search.scheduler_config(self.protocols[0].epochs)
        return ("asha", asha) if asha else None

    def iter_trials(self):
        varying = tuple(f.name for f in dataclasses.fields(Protocol)
                        if len({getattr(p, f.name) for p in self.protocols}) > 1)
        data_id = self.data_id
        names = point_names(self.fidelity, len(self.protocols))
        return (TrialSpec(self.name, self.dataset, data_id, ts.group, ts.kind, i, ts.source, ts.num_classes,
                          seed, p, varying, point)
                for p, point in zip(self.protocols, names) for ts in self.tasks for i in ts.indices
                for seed in self.seeds)

    def trial_count(self) -> int:
        return len(self.protocols) * sum(len(ts.indices) for ts in self.tasks) * len(self.seeds)

    def task_sets(self) -> tuple[tuple[str, "TaskSet"], ...]:
        return tuple((f"tasks.{ts.group}", ts) for ts in self.tasks)


@dataclass(frozen=True)
class TrialSpec:
    """One trial: a pair `seed` on task `kind`-`index` (shown as `group`-`index`) under `protocol`."""
    spec: str
    dataset: DatasetSpec
    data_id: str
    group: str
    kind: str
    index: int
    source: str | None
    num_classes: int
    seed: int
    protocol: Protocol
    varying: tuple[str, ...] = ()
    point: str = ""  # the protocol point's name in a fidelity study ('' = named by its grid values)

    @property
    def protocol_hash(self) -> str:
        """Identity of everything that changes the result besides task and seed."""
        return protocol_hash(self.protocol, self.data_id, self.kind, self.source, self.num_classes)

    @property
    def key(self) -> str:
        return f"{self.group}-{self.index}__seed{self.seed}__{self.protocol_hash}"

    @property
    def run_name(self) -> str:
        name = f"{self.spec}__{self.group}-{self.index}__seed{self.seed}"
        if self.protocol.pair_name != self.protocol.arch:  # a cross-architecture pair says so
            name += f"__{self.protocol.pair_name}"
        if self.point or self.varying:
            name += "__" + (self.point or grid_label(self.protocol, self.varying))
        return name

    def to_config(self) -> dict:
        return to_plain(self)

    @classmethod
    def from_config(cls, c: dict) -> "TrialSpec":
        return cls(c["spec"], DatasetSpec(**c["dataset"]), c["data_id"], c["group"], c["kind"], c["index"], c["source"],
                   c["num_classes"], c["seed"], Protocol(**c["protocol"]), tuple(c["varying"]), c["point"])


@functools.lru_cache(maxsize=4096)  # shared by every trial of a task set: hashed once, not per trial
def protocol_hash(protocol: Protocol, data_id: str, kind: str, source: str | None, num_classes: int) -> str:
    return digest({"protocol": protocol.identity(), "dataset": data_id, "kind": kind, "source": source,
                   "num_classes": num_classes, "holdout_rule": HOLDOUT_RULE})


def resolve_paths(spec: SweepSpec) -> SweepSpec:
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


def parse_spec(data: dict, origin: str) -> SweepSpec:
    data = dict(data)
    protocols = protocol_grid(data.pop("protocol", None), origin)
    if "protocols" in data or "tasks" not in data:
        raise SpecError(f"{origin}: " + ("use `protocol:` (lists sweep a grid), not `protocols:`"
                                         if "protocols" in data else "missing key tasks; e.g. tasks: {real: 0-3}"))
    tasks = task_sets(data.pop("tasks"), origin)
    protocols, fidelity = parse_fidelity(data.pop("fidelity", None), protocols, origin)
    parse_seeds(data, "seeds", origin)
    spec = build(SweepSpec, data, "", origin, shown=("protocol", "tasks", "fidelity"), protocols=protocols,
                 tasks=tasks, fidelity=fidelity)
    return checked_data(resolve_paths(spec), origin)


def checked_data(spec, origin: str):
    """`spec` if its dataset can be had (a cheap check, no decoding), else a SpecError."""
    try:
        spec.data_id
    except DatasetError as e:
        raise SpecError(f"{origin}: dataset: {e}") from None
    return spec


def spec_data(spec: SweepSpec) -> dict:
    """The resolved spec in the YAML shape `load_spec` reads: a protocol grid and task sets."""
    data = to_plain(spec)
    if spec.fidelity.on:
        data["protocol"], data["fidelity"] = data.pop("protocols")[0], fidelity_data(spec.protocols, spec.fidelity)
    else:
        data.pop("fidelity")
        data["protocol"] = grid_of(data.pop("protocols"))
    data["tasks"] = task_sets_data(spec.tasks)
    return data


def plain_spec(spec: SweepSpec) -> str:
    return yaml.safe_dump(spec_data(spec), sort_keys=False)


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SweepSpec:
    """Load, override (`protocol.epochs=3`) and validate a sweep spec; raises SpecError."""
    data = read_yaml(path)
    for assignment in overrides:
        apply_override(data, assignment)
    return parse_spec(data, str(path))
