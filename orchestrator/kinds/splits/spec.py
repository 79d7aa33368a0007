"""The split spec: train networks on adversarial and random train/test splits of the training images.

`splits:` names binary target tasks and where the splits come from: tasks d (`rules:`, typically
discovered; one adversarial split per target and rule) or a split file (the authors' layout, a
single split or Parquet). Next to each adversarial or file split it can add a random split of the
same part sizes, and per target seeded random 50/50 splits (the authors' baseline). Every split
is trained under every protocol point and seed, on the target's labels or the dataset's classes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from trainables.config import param
from trainables.protocol import Protocol
from trainables.splits.config import LABELS

from orchestrator.specs.base import DatasetSpec, SweepBase, checked_data, resolve_paths
from orchestrator.specs.task_sets import TaskSet, task_sets
from orchestrator.specs.grids import grid_of, on_device, protocol_grid
from orchestrator.specs.indices import parse_indices, parse_seeds
from orchestrator.specs.io import SpecError, build, digest, from_plain, grid_label, to_plain

# Targets and rules must be binary tasks; these kinds are not (or not always).
NOT_BINARY = ("real10",)


@dataclass(frozen=True)
class SplitPlan:
    targets: TaskSet = param(TaskSet(), "binary target tasks t: each split is built for one and trained on "
                                        "its labels (from `targets:`, e.g. {kind: real, indices: [0, 11]})")
    rules: tuple[TaskSet, ...] = param((), "task sets d: one adversarial split (train where d = t) per target "
                                           "and task (from `rules:`, e.g. {discovered: {path: ..., indices: 0-7}})")
    file: str | None = param(None, "read the splits from this file instead: the authors' {task_idx: [(train, "
                                   "test), ...]} .torch, a single [train, test] .torch, or a .parquet split table")
    random: bool = param(True, "next to each adversarial or file split, a random split of the same part sizes")
    half: int = param(1, "seeded random 50/50 splits per target (the authors' baseline)", ge=0)
    labels: tuple[str, ...] = param(("target",), "train on: target = the target's labels, classes = the "
                                                 "dataset's own classes (the paper's 10-way use)")
    networks: int = param(1, "networks per trial: 1, or 2 (a pair: also its agreement on the test part)",
                          ge=1, le=2)


@dataclass(frozen=True)
class SplitSpec(SweepBase):
    protocols: tuple[Protocol, ...] = param((Protocol(),), "training protocol grid points (from `protocol:`)")
    splits: SplitPlan = param(SplitPlan(), "which splits to build and train on (from `splits:`)")
    seeds: tuple[int, ...] = param((0,), "training seeds: one network (or pair) per seed and split")

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "protocols", on_device(self.protocols, self.device))

    def iter_trials(self) -> list["SplitTrial"]:
        from orchestrator.kinds.splits.build import file_positions  # reads the split file once per spec
        varying = tuple(f.name for f in dataclasses.fields(Protocol)
                        if len({getattr(p, f.name) for p in self.protocols}) > 1)
        plan, out = self.splits, []
        positions = file_positions(plan.file, plan.targets) if plan.file else {}
        for p in self.protocols:
            for target in plan.targets.indices:
                for split in self._splits_of(target, positions):
                    for labels in plan.labels:
                        for seed in self.seeds:
                            out.append(SplitTrial(self.name, self.dataset, self.data_id, plan.targets.kind,
                                                      target, plan.targets.source, *split, plan.file, labels,
                                                      plan.networks, seed, p, varying, str(self.sweep_dir)))
        return out

    def task_sets(self) -> tuple[tuple[str, TaskSet], ...]:
        return (("splits.targets", self.splits.targets),
                *((f"splits.rules.{ts.group}", ts) for ts in self.splits.rules))

    def preflight(self, origin: str):
        """Also build every split once (bad indices, overlaps, a file of another layout fail here)."""
        from orchestrator.kinds.splits.build import check_splits
        dataset = super().preflight(origin)
        check_splits(self, dataset, origin)
        return dataset

    def trial_count(self) -> int:
        from orchestrator.kinds.splits.build import file_positions
        plan = self.splits
        positions = file_positions(plan.file, plan.targets) if plan.file else {}
        copies = 2 if plan.random else 1
        per_target = sum(len(r.indices) for r in plan.rules) * copies + plan.half
        splits = sum(per_target + (positions[t][1] * copies if plan.file else 0) for t in plan.targets.indices)
        return len(self.protocols) * splits * len(plan.labels) * len(self.seeds)

    def _splits_of(self, target: int, positions: dict[int, tuple[int, int]]) -> list[tuple]:
        """(kind, index, rule group, rule kind, rule source, file key) of every split of `target`."""
        plan, out = self.splits, []
        for rules in plan.rules:
            name = rules.group if len(plan.rules) > 1 else ""  # run names tell rule sets apart only if needed
            for i in rules.indices:
                out.append(("adversarial", i, name, rules.kind, rules.source, None))
                if plan.random:
                    out.append(("random", i, name, rules.kind, rules.source, None))
        if plan.file:
            key, count = positions[target]
            for i in range(count):
                out += [("file", i, "", None, None, key)] + ([("random", i, "", None, None, key)]
                                                              if plan.random else [])
        out += [("half", h, "", None, None, None) for h in range(plan.half)]
        return out


@dataclass(frozen=True)
class SplitTrial:
    """One network (or pair) `seed` trained on split `split_kind`-`split_index` of target
    `target_kind`-`target`. A random split takes its part sizes from the adversarial (rule) or
    file split of the same index."""
    spec: str
    dataset: DatasetSpec
    data_id: str
    target_kind: str
    target: int
    target_source: str | None
    split_kind: str  # adversarial, random, file or half
    split_index: int
    rule_group: str
    rule_kind: str | None
    rule_source: str | None
    file_key: int | None
    file: str | None
    labels: str
    networks: int
    seed: int
    protocol: Protocol
    varying: tuple[str, ...] = ()
    sweep_dir: str = ""  # where the driver writes the trial's figure

    @property
    def group(self) -> str:
        """The split family in results: adversarial, random, half or file, with the rule set's
        name where a spec has several."""
        return self.split_kind + (f"_{self.rule_group}" if self.rule_group else "")

    @property
    def target_name(self) -> str:
        return f"{self.target_kind}-{self.target}"

    @property
    def protocol_hash(self) -> str:
        data = {k: v for k, v in to_plain(self).items() if k not in ("spec", "dataset", "varying", "seed", "sweep_dir")}
        return digest({**data, "protocol": self.protocol.identity()})

    @property
    def key(self) -> str:
        return f"{self.target_name}__{self.group}-{self.split_index}__{self.labels}__seed{self.seed}__{self.protocol_hash}"

    @property
    def run_name(self) -> str:
        name = f"{self.spec}__{self.target_name}__{self.group}-{self.split_index}"
        name += ("__10way" if self.labels == "classes" else "") + f"__seed{self.seed}"
        if self.varying:
            name += "__" + grid_label(self.protocol, self.varying)
        return name

    def to_config(self) -> dict:
        return to_plain(self)

    @classmethod
    def from_config(cls, c: dict) -> "SplitTrial":
        return from_plain(cls, c)


def _one_set(raw, key: str, origin: str) -> TaskSet:
    """`targets:` as one task set: {kind: real, indices: [0, 11]} or {real: [0, 11]}."""
    if isinstance(raw, dict) and "kind" in raw:
        raw = {raw["kind"]: {k: v for k, v in raw.items() if k != "kind"}}
    sets = task_sets(raw, origin, key)
    if len(sets) != 1:
        raise SpecError(f"{origin}: {key} must name one task set, e.g. {{kind: real, indices: [0, 11]}}")
    return sets[0]


def _binary(sets: tuple[TaskSet, ...], key: str, origin: str) -> None:
    for ts in sets:
        if ts.kind in NOT_BINARY or ts.num_classes != 2:
            raise SpecError(f"{origin}: {key}: {ts.kind} tasks with {ts.num_classes} classes are not binary; "
                            "splits need binary tasks (real, discovered, table, classes)")


def split_plan(raw, origin: str, given: tuple[str, ...] = ()) -> SplitPlan:
    """The `splits:` section; `given` names the parts that come from elsewhere ("rules": a discovery
    spec's encoders; "targets" too: a random-network split's)."""
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: splits must be a mapping with targets and rules (or file)")
    raw = dict(raw)
    for part in given:
        if part in raw:
            raise SpecError(f"{origin}: splits.{part} is set by the runs before the splits; remove it")
    if "targets" not in raw and "targets" not in given:
        raise SpecError(f"{origin}: splits needs targets, e.g. targets: {{kind: real, indices: [0, 11, 18]}}")
    targets = _one_set(raw.pop("targets"), "splits.targets", origin) if "targets" in raw else TaskSet()
    rules = task_sets(raw.pop("rules"), origin, "splits.rules") if raw.get("rules") else ()
    raw.pop("rules", None)
    labels = raw.get("labels", ["target"])
    raw["labels"] = [labels] if isinstance(labels, str) else labels
    plan = build(SplitPlan, raw, "splits", origin, shown=("targets", "rules"), targets=targets, rules=rules)
    _binary((targets,) + rules, "splits", origin)
    bad = [v for v in plan.labels if v not in LABELS]
    if bad or not plan.labels:
        raise SpecError(f"{origin}: splits.labels={list(plan.labels)!r} is invalid: list one or more of "
                        f"{', '.join(LABELS)}")
    if plan.file is not None:
        if not Path(plan.file).is_file():
            raise SpecError(f"{origin}: splits.file={plan.file!r} is not a file; give the path of a split file")
        plan = dataclasses.replace(plan, file=str(Path(plan.file).resolve()))  # trials run elsewhere
    if given and plan.file:
        raise SpecError(f"{origin}: splits.file cannot be used here: the runs before the splits build them")
    if not given and bool(rules) == bool(plan.file):
        raise SpecError(f"{origin}: splits needs either rules (tasks to split by) or file (precomputed splits), "
                        "not " + ("both" if rules else "neither"))
    return plan


@dataclass(frozen=True)
class SplitFollowUp:
    """A `splits:` section after runs that make the splitting tasks (discovery, a random network)."""
    protocols: tuple = param((), "training protocol grid points for the splits (from `protocol:`)")
    seeds: tuple[int, ...] = param((0,), "training seeds per split")
    rules: tuple[int, ...] | None = param(None, "which of the found tasks build adversarial splits; null = all")
    plan: SplitPlan = param(SplitPlan(), "targets, baselines, labels and networks (as a split spec's `splits:`)")

    def sweep(self, parent, name: str, plan: SplitPlan) -> SplitSpec:
        """The split sweep of `plan`, run with `parent`'s data, resources and tracking."""
        return SplitSpec(name=name, dataset=parent.dataset, protocols=self.protocols, splits=plan,
                              seeds=self.seeds, resources=parent.resources, concurrency=parent.concurrency,
                              max_failures=parent.max_failures, tracking=parent.tracking,
                              output_dir=parent.output_dir)


def split_follow_up(raw, origin: str, given: tuple[str, ...]) -> SplitFollowUp | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: splits must be a mapping with protocol, seeds and what to split")
    raw = dict(raw)
    rules = raw.pop("rules", None) if "rules" in given else None
    rules = None if rules is None else parse_indices(rules, "splits.rules", origin)
    protocols = protocol_grid(raw.pop("protocol", None), origin)
    seeds = {"seeds": raw.pop("seeds", [0])}
    parse_seeds(seeds, "splits.seeds", origin)
    plan = split_plan(raw, origin, given)
    return build(SplitFollowUp, seeds, "splits", origin, protocols=protocols, rules=rules, plan=plan)


def follow_up_data(follow: SplitFollowUp) -> dict:
    plan = split_spec_data(SplitSpec(protocols=follow.protocols, splits=follow.plan))
    out = {**plan["splits"], "protocol": plan["protocol"], "seeds": list(follow.seeds),
           "rules": list(follow.rules) if follow.rules else None}
    out.pop("file")
    return out


def parse_split_spec(data: dict, origin: str) -> SplitSpec:
    data = dict(data)
    protocols = protocol_grid(data.pop("protocol", None), origin)
    plan = split_plan(data.pop("splits"), origin)
    parse_seeds(data, "seeds", origin)
    spec = build(SplitSpec, data, "", origin, shown=("protocol", "splits"), protocols=protocols, splits=plan)
    return checked_data(resolve_paths(spec), origin)


def split_spec_data(spec: SplitSpec) -> dict:
    """The resolved spec in the YAML shape the loader reads."""
    data = to_plain(spec)
    data["protocol"] = grid_of(data.pop("protocols"))
    plan = spec.splits
    data["splits"] = {**{f.name: to_plain(getattr(plan, f.name)) for f in dataclasses.fields(plan)},
                      "targets": {"kind": plan.targets.kind, "indices": list(plan.targets.indices),
                                  "source": plan.targets.source},
                      "rules": {ts.group: {"kind": ts.kind, "indices": list(ts.indices), "source": ts.source}
                                for ts in plan.rules} or None}
    return data
