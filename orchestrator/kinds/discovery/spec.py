"""The discovery spec: a grid of discovery configs, and optionally how to score what they find.

`discovery:` holds DiscoveryConfig fields (a list sweeps a grid); `score:` (optional) turns
the finished encoders' task tables into an agreement sweep, with the encoders' tasks before
training and baseline task sets (e.g. random, real) scored under the same protocol, so
discover-then-score is one spec and one command. `search:` (optional) runs the grid points as a
Population Based Training population (specs/discovery_search.py).
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path

from trainables.config import ConfigError, param
from trainables.data import HOLDOUT_RULE
from trainables.discovery import DiscoveryConfig
from trainables.sources import content_key
from trainables.task_table import file_version

from orchestrator.kinds.agreement.spec import AgreementSpec

from orchestrator.specs.base import DatasetSpec, SweepBase, checked_data, resolve_paths
from orchestrator.specs.task_sets import TaskSet, task_sets, task_sets_data
from orchestrator.kinds.discovery.search import OBJECTIVE, DiscoverySearch
from orchestrator.specs.grids import grid, grid_of, on_device, protocol_grid
from orchestrator.specs.indices import parse_indices, parse_seeds
from orchestrator.kinds.splits.spec import SplitFollowUp, SplitSpec, follow_up_data, split_follow_up
from orchestrator.specs.io import SpecError, build, digest, from_plain, grid_label, to_plain

TABLE, UNTRAINED, CSV, ENCODER = "tasks.parquet", "untrained.parquet", "discovered.csv", "encoder.pt"
CLOSENESS = "closest_real.csv"  # each task's nearest human (real) task, trained and untrained


@dataclass(frozen=True)
class ScoreSpec:
    protocols: tuple = param((), "AS protocol grid points for scoring (from `protocol:`)")
    seeds: tuple[int, ...] = param((0,), "pair seeds per scored task")
    tasks: tuple[int, ...] | None = param(None, "which discovered tasks to score; null = all hyperplanes")
    untrained: bool = param(True, "also score each encoder's tasks before training (step 0)")
    baselines: tuple = param((), "task sets scored alongside, e.g. {random: 0-7, real: 0-7}")
    best: int | None = param(None, "score only the encoders of this many highest final search/objective "
                                   "values (the search's result); null = every encoder", ge=1)


@dataclass(frozen=True)
class DiscoverySpec(SweepBase):
    configs: tuple = param((), "discovery config grid points (from `discovery:`)")
    steps_per_report: int = param(10, "meta-steps per Tune step (one report, one possible checkpoint)", ge=1)
    score: ScoreSpec | None = param(None, "score the discovered tasks afterwards (null = do not)")
    splits: SplitFollowUp | None = param(None, "build adversarial splits from the discovered tasks and train on "
                                               "them afterwards (null = do not)")
    search: DiscoverySearch = param(DiscoverySearch(), "the objective (search/objective) and Population Based "
                                                       "Training over the grid points")

    def __post_init__(self):
        super().__post_init__()
        self.search.check_population(self.configs, self.steps_per_report, self.concurrency)
        if self.score:  # resolved here too, so this spec's saved copy says which precision scored
            protocols = on_device(self.score.protocols, self.device)
            object.__setattr__(self, "score", dataclasses.replace(self.score, protocols=protocols))

    def scheduler_config(self) -> tuple[str, dict] | None:
        return self.search.scheduler_config()

    def resumable(self, done: set[str]) -> set[str]:
        """A PBT population is one search (its trials copy each other): a partly recorded one runs
        again as a whole; an independent grid skips what is recorded."""
        if self.search.on and not {t.key for t in self.iter_trials()} <= done:
            return set()
        return done

    def iter_trials(self) -> list["DiscoveryTrial"]:
        varying = tuple(f.name for f in dataclasses.fields(DiscoveryConfig)
                        if len({getattr(c, f.name) for c in self.configs}) > 1)
        # A PBT trial's result depends on the whole population and the search settings: both are its identity.
        search_id = digest({"search": to_plain(self.search), "population": [to_plain(c) for c in self.configs]})
        return [DiscoveryTrial(self.name, self.dataset, self.data_id, c, varying, self.steps_per_report,
                                   str(self.sweep_dir), self.search,
                                   {m: getattr(c, m) for m in self.search.mutate} if self.search.on else {},
                                   search_id if self.search.on else "")
                for c in self.configs]

    def task_sets(self) -> tuple[tuple[str, TaskSet], ...]:
        baselines = tuple((f"score.baselines.{ts.group}", ts) for ts in (self.score.baselines if self.score else ()))
        return baselines + ((("splits.targets", self.splits.plan.targets),) if self.splits else ())

    def score_spec(self, rows: list[dict]) -> AgreementSpec:
        """The agreement sweep over the discovered (and untrained) tasks of `rows` plus the baselines."""
        sets = []
        if self.score.best is not None:
            rows = sorted(rows, key=lambda r: r.get(OBJECTIVE, float("-inf")), reverse=True)[:self.score.best]
        for r in sorted(rows, key=lambda r: r["run_name"]):
            suffix = r["label"] and f"_{r['label']}"
            indices = self.score.tasks or tuple(range(r["n_tasks"]))
            sets.append(TaskSet(f"discovered{suffix}", "discovered", indices, r["table"], 2))
            if self.score.untrained:
                sets.append(TaskSet(f"untrained{suffix}", "discovered", indices, r["untrained_table"], 2))
        return AgreementSpec(name=f"{self.name}-score", dataset=self.dataset, protocols=self.score.protocols,
                         tasks=tuple(sets) + self.score.baselines, seeds=self.score.seeds,
                         resources=self.resources, concurrency=self.concurrency, max_failures=self.max_failures,
                         tracking=self.tracking, output_dir=self.output_dir)


    def split_spec(self, rows: list[dict]) -> SplitSpec:
        """The split sweep: adversarial splits of every target by every encoder's discovered tasks."""
        follow = self.splits
        rules = tuple(TaskSet(f"discovered{r['label'] and '_' + r['label']}", "discovered",
                              follow.rules or tuple(range(r["n_tasks"])), r["table"], 2)
                      for r in sorted(rows, key=lambda r: r["run_name"]))
        return follow.sweep(self, f"{self.name}-splits", dataclasses.replace(follow.plan, rules=rules))

    def preflight(self, origin: str):
        """The base checks, then every backbone checkpoint against the encoder it is to fill."""
        from trainables.discovery import build_encoder
        from trainables.discovery.backbone import load_backbone
        dataset = super().preflight(origin)
        for c in {c.backbone_ckpt: c for c in self.configs if c.backbone_ckpt}.values():
            try:
                load_backbone(build_encoder(c, dataset.image_shape), c.backbone_ckpt)
            except ConfigError as e:
                raise SpecError(f"{origin}: discovery.{e}") from None
        return dataset

    def follow_ups(self, rows: list[dict]) -> list:
        """The sweeps that run on what the encoders found: scoring, then splits."""
        return ([self.score_spec(rows)] if self.score else []) + ([self.split_spec(rows)] if self.splits else [])


@dataclass(frozen=True)
class DiscoveryTrial:
    spec: str
    dataset: DatasetSpec
    data_id: str
    config: DiscoveryConfig
    varying: tuple[str, ...]
    steps_per_report: int
    sweep_dir: str
    search: DiscoverySearch = DiscoverySearch()
    tuned: dict = field(default_factory=dict)  # hyperparameter -> value now: PBT changes these mid-run
    search_id: str = ""  # digest of the search and its population ('' = an independent trial)

    @property
    def key(self) -> str:
        # The AS holdout rule decides which images discovery may train on. `config` is the trial's start:
        # the key stays the same when PBT changes `tuned`.
        data = {"config": to_plain(self.config), "dataset": self.data_id, "holdout_rule": HOLDOUT_RULE}
        if self.config.backbone_ckpt:  # the weights, not the path: a retrained backbone is another trial
            path = self.config.backbone_ckpt
            data["backbone"] = file_digest(path, file_version(Path(path)))
        return "discover__" + digest({**data, "search": self.search_id} if self.search_id else data)

    @property
    def run_config(self) -> DiscoveryConfig:
        """The config the encoder trains under now: the start with PBT's current hyperparameters."""
        return dataclasses.replace(self.config, **self.tuned)

    @property
    def label(self) -> str:
        """The grid point, e.g. 'uniformity_coef-25_h_dim-8' ('' for a single config)."""
        return grid_label(self.config, self.varying)

    @property
    def run_name(self) -> str:
        return f"{self.spec}__discover__seed{self.config.encoder_seed}" + (f"__{self.label}" if self.label else "")

    @property
    def out_dir(self) -> Path:
        return Path(self.sweep_dir) / "discovered" / self.key

    def to_config(self) -> dict:
        return to_plain(self)

    @classmethod
    def from_config(cls, c: dict) -> "DiscoveryTrial":
        return from_plain(cls, c)


def _configs(raw, origin: str) -> tuple[DiscoveryConfig, ...]:
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: discovery must be a mapping of DiscoveryConfig fields to values")
    return tuple(_resolved(build(DiscoveryConfig, point, "discovery", origin), origin) for point in grid(raw))


def _resolved(config: DiscoveryConfig, origin: str) -> DiscoveryConfig:
    """`config` with its backbone checkpoint's path made absolute (trials run elsewhere), once the
    file is known to be a readable state dict."""
    if not config.backbone_ckpt:
        return config
    from trainables.discovery.backbone import read_backbone  # PyTorch: only for a spec that names a checkpoint
    path = Path(config.backbone_ckpt).expanduser().resolve()
    try:
        read_backbone(path)
    except ConfigError as e:
        raise SpecError(f"{origin}: discovery.{e}") from None
    return dataclasses.replace(config, backbone_ckpt=str(path))


@functools.lru_cache(maxsize=64)
def file_digest(path: str, version: tuple) -> str:
    """The file's content key (16 hex), hashed once per `version` (size, mtime) of it."""
    return content_key(Path(path))[:16]


def _score(raw, origin: str) -> ScoreSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: score must be a mapping with protocol, seeds, tasks, untrained, baselines")
    raw = dict(raw)
    if raw.get("tasks") is not None:
        raw["tasks"] = list(parse_indices(raw["tasks"], "score.tasks", origin))
    parse_seeds(raw, "score.seeds", origin)
    protocols = protocol_grid(raw.pop("protocol", None), origin)
    baselines = task_sets(raw.pop("baselines"), origin, "score.baselines") if raw.get("baselines") else ()
    raw.pop("baselines", None)
    return build(ScoreSpec, raw, "score", origin, shown=("protocol", "baselines"), protocols=protocols,
                 baselines=baselines)


def parse_discovery_spec(data: dict, origin: str) -> DiscoverySpec:
    data = dict(data)
    configs = _configs(data.pop("discovery"), origin)
    score = _score(data.pop("score", None), origin)
    splits = split_follow_up(data.pop("splits", None), origin, given=("rules",))
    spec = build(DiscoverySpec, data, "", origin, shown=("discovery", "score", "splits"), configs=configs,
                 score=score, splits=splits)
    if score and score.best and any(c.quick_eval_every is None for c in configs):
        raise SpecError(f"{origin}: score.best ranks encoders by search/objective, which needs quick evaluations: "
                        "set discovery.quick_eval_every")
    n_tasks = min(c.n_linear_tasks for c in configs)
    for key, indices in (("score.tasks", score and score.tasks), ("splits.rules", splits and splits.rules)):
        if indices and max(indices) >= n_tasks:
            raise SpecError(f"{origin}: {key} includes {max(indices)}, but the encoders define tasks "
                            f"0..{n_tasks - 1} (n_linear_tasks); lower it")
    return checked_data(resolve_paths(spec), origin)


def discovery_spec_data(spec: DiscoverySpec) -> dict:
    """The resolved spec in the YAML shape the loader reads."""
    data = to_plain(spec)
    data["discovery"] = grid_of(data.pop("configs"))
    if spec.score is not None:
        data["score"] = {"protocol": grid_of([to_plain(p) for p in spec.score.protocols]),
                         "seeds": list(spec.score.seeds),
                         "tasks": list(spec.score.tasks) if spec.score.tasks else None,
                         "untrained": spec.score.untrained, "baselines": task_sets_data(spec.score.baselines),
                         "best": spec.score.best}
    if spec.splits is not None:
        data["splits"] = follow_up_data(spec.splits)
    return data
