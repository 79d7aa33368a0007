"""The agreement spec: what to score (tasks x seeds x protocol grid), where, and how to track it.

A spec is YAML loaded into frozen dataclasses; `iter_trials()` expands it into one `AgreementTrial`
per (task, seed, protocol point).
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass


from trainables.config import param
from trainables.data import HOLDOUT_RULE
from trainables.protocol import Protocol

from orchestrator.specs.base import DatasetSpec, SweepBase, checked_data, resolve_paths
from orchestrator.specs.indices import parse_seeds
from orchestrator.specs.io import SpecError, build, digest, from_plain, grid_label, to_plain
from orchestrator.specs.grids import grid_of, on_device, protocol_grid
from orchestrator.specs.fidelity import Fidelity, fidelity_data, parse_fidelity, point_names
from orchestrator.specs.search import Search
from orchestrator.specs.task_sets import TaskSet, task_sets, task_sets_data

@dataclass(frozen=True)
class AgreementSpec(SweepBase):
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
        return (AgreementTrial(self.name, self.dataset, data_id, ts.group, ts.kind, i, ts.source, ts.num_classes,
                          seed, p, varying, point)
                for p, point in zip(self.protocols, names) for ts in self.tasks for i in ts.indices
                for seed in self.seeds)

    def trial_count(self) -> int:
        return len(self.protocols) * sum(len(ts.indices) for ts in self.tasks) * len(self.seeds)

    def task_sets(self) -> tuple[tuple[str, "TaskSet"], ...]:
        return tuple((f"tasks.{ts.group}", ts) for ts in self.tasks)


@dataclass(frozen=True)
class AgreementTrial:
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
    def from_config(cls, c: dict) -> "AgreementTrial":
        return from_plain(cls, c)


@functools.lru_cache(maxsize=4096)  # shared by every trial of a task set: hashed once, not per trial
def protocol_hash(protocol: Protocol, data_id: str, kind: str, source: str | None, num_classes: int) -> str:
    return digest({"protocol": protocol.identity(), "dataset": data_id, "kind": kind, "source": source,
                   "num_classes": num_classes, "holdout_rule": HOLDOUT_RULE})


def parse_spec(data: dict, origin: str) -> AgreementSpec:
    data = dict(data)
    protocols = protocol_grid(data.pop("protocol", None), origin)
    if "protocols" in data or "tasks" not in data:
        raise SpecError(f"{origin}: " + ("use `protocol:` (lists sweep a grid), not `protocols:`"
                                         if "protocols" in data else "missing key tasks; e.g. tasks: {real: 0-3}"))
    tasks = task_sets(data.pop("tasks"), origin)
    protocols, fidelity = parse_fidelity(data.pop("fidelity", None), protocols, origin)
    parse_seeds(data, "seeds", origin)
    spec = build(AgreementSpec, data, "", origin, shown=("protocol", "tasks", "fidelity"), protocols=protocols,
                 tasks=tasks, fidelity=fidelity)
    return checked_data(resolve_paths(spec), origin)


def spec_data(spec: AgreementSpec) -> dict:
    """The resolved spec in the YAML shape `load_spec` reads: a protocol grid and task sets."""
    data = to_plain(spec)
    if spec.fidelity.on:
        data["protocol"], data["fidelity"] = data.pop("protocols")[0], fidelity_data(spec.protocols, spec.fidelity)
    else:
        data.pop("fidelity")
        data["protocol"] = grid_of(data.pop("protocols"))
    data["tasks"] = task_sets_data(spec.tasks)
    return data
