"""The random-network split spec: score an image tree with random networks, then train on the splits.

`randnet:` holds RandnetConfig fields (a list sweeps a grid: e.g. several net_seed). Each grid
point is one trial that streams the training images of `dataset.root` (an ImageFolder tree or its
tarball, of any size) and exports its split: the authors' single-split file, a Parquet split table,
a CelebA-style partition CSV, the target's classes and the splitting task as a task table.
`splits:` (optional) trains on each exported split next to its random baselines.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from trainables.config import param
from trainables.data import is_image_tree
from trainables.splits import RandnetConfig

from orchestrator.specs.base import DatasetSpec, SweepBase, checked_data, resolve_paths
from orchestrator.specs.task_sets import TaskSet
from orchestrator.specs.grids import grid, grid_of
from orchestrator.specs.io import SpecError, build, digest, from_plain, grid_label, to_plain
from orchestrator.kinds.splits.spec import SplitFollowUp, SplitSpec, follow_up_data, split_follow_up

SPLIT, TABLE, PARTITION, TARGET, RULE = "adv-split.torch", "split.parquet", "partition.csv", "target.npy", "rule.parquet"


@dataclass(frozen=True)
class RandnetSpec(SweepBase):
    configs: tuple = param((), "random-network config grid points (from `randnet:`)")
    splits: SplitFollowUp | None = param(None, "train on each exported split afterwards (null = do not)")

    def iter_trials(self) -> list["RandnetTrial"]:
        varying = tuple(f.name for f in dataclasses.fields(RandnetConfig)
                        if len({getattr(c, f.name) for c in self.configs}) > 1)
        return [RandnetTrial(self.name, self.dataset, self.data_id, c, varying, str(self.sweep_dir))
                for c in self.configs]

    def preflight(self, origin: str):
        """Nothing to decode: the random network streams the images (an ImageNet-sized folder is never
        held whole); the loader checked that the folder or tarball is there, each trial reads it."""
        return None

    def follow_ups(self, rows: list[dict]) -> list[SplitSpec]:
        """One split sweep per scored config: its target (a half of the classes) split by its rule."""
        if self.splits is None:
            return []
        out = []
        for r in sorted(rows, key=lambda r: r["run_name"]):
            plan = dataclasses.replace(self.splits.plan, targets=TaskSet("target", "classes", (0,), r["target"], 2),
                                       rules=(TaskSet("randnet", "table", (0,), r["rule"], 2),))
            out.append(self.splits.sweep(self, f"{self.name}-splits" + (f"-{r['label']}" if r["label"] else ""), plan))
        return out


@dataclass(frozen=True)
class RandnetTrial:
    spec: str
    dataset: DatasetSpec
    data_id: str
    config: RandnetConfig
    varying: tuple[str, ...]
    sweep_dir: str

    @property
    def key(self) -> str:
        data = {"config": to_plain(self.config), "dataset": self.data_id}
        return "randnet__" + digest(data)

    @property
    def label(self) -> str:
        return grid_label(self.config, self.varying)

    @property
    def run_name(self) -> str:
        return f"{self.spec}__randnet__seed{self.config.net_seed}" + (f"__{self.label}" if self.label else "")

    @property
    def out_dir(self) -> Path:
        return Path(self.sweep_dir) / "randnet" / self.key

    def to_config(self) -> dict:
        return to_plain(self)

    @classmethod
    def from_config(cls, c: dict) -> "RandnetTrial":
        return from_plain(cls, c)


def parse_randnet_spec(data: dict, origin: str) -> RandnetSpec:
    data = dict(data)
    raw = data.pop("randnet")
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: randnet must be a mapping of RandnetConfig fields to values")
    configs = tuple(build(RandnetConfig, point, "randnet", origin) for point in grid(raw))
    splits = split_follow_up(data.pop("splits", None), origin, given=("rules", "targets"))
    spec = checked_data(resolve_paths(build(RandnetSpec, data, "", origin, shown=("randnet", "splits"),
                                            configs=configs, splits=splits)), origin)
    if not spec.dataset.root or not is_image_tree(Path(spec.dataset.root)):
        raise SpecError(f"{origin}: dataset.root={spec.dataset.root!r}: the random network streams an image "
                        "folder (train/<class>/...) or its tarball; point dataset.root at one")
    return spec


def randnet_spec_data(spec: RandnetSpec) -> dict:
    data = to_plain(spec)
    data["randnet"] = grid_of(data.pop("configs"))
    if spec.splits is not None:
        data["splits"] = {k: v for k, v in follow_up_data(spec.splits).items() if k not in ("targets", "rules")}
    return data
