"""The pretraining spec: SimCLR backbones, then SSL-regulated discovery on each of them, frozen.

`pretrain:` holds SimCLRConfig fields (a list sweeps a grid); each grid point is one trial that
exports its backbone's state dict. `discovery:` (optional) holds DiscoveryConfig fields of a
discovery sweep run on every pretrained backbone: arch, width and backbone_ckpt come from the
pretraining, the backbone is frozen (only the projection to h_dim learns) and sees pixels in
[0, 1] as in pretraining. `score:`, `search:` and `steps_per_report` are the discovery spec's. So pretrain ->
discover -> score is one spec and one command, every sweep in one MLflow experiment.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from trainables.config import param
from trainables.data import HOLDOUT_RULE
from trainables.ssl import SimCLRConfig

from orchestrator.specs.base import DatasetSpec, SweepBase, checked_data, resolve_paths
from orchestrator.kinds.discovery.spec import DiscoverySpec, discovery_spec_data, parse_discovery_spec
from orchestrator.specs.grids import grid, grid_of
from orchestrator.specs.io import SpecError, build, digest, from_plain, grid_label, to_plain

BACKBONE = "backbone.pt"
# Discovery fields the pretraining decides: the backbone's architecture, its weights, what it sees.
DERIVED = ("arch", "width", "backbone_ckpt")
DISCOVERY_KEYS = ("discovery", "score", "search", "steps_per_report")


@dataclass(frozen=True)
class PretrainSpec(SweepBase):
    configs: tuple = param((), "SimCLR config grid points (from `pretrain:`)")
    discover: DiscoverySpec | None = param(None, "discovery on every pretrained backbone (from `discovery:`, "
                                                 "`score:`, `steps_per_report`); null = pretrain only")

    def iter_trials(self) -> list["PretrainTrial"]:
        varying = tuple(f.name for f in dataclasses.fields(SimCLRConfig)
                        if len({getattr(c, f.name) for c in self.configs}) > 1)
        return [PretrainTrial(self.name, self.dataset, self.data_id, c, varying, str(self.sweep_dir))
                for c in self.configs]

    def follow_ups(self, rows: list[dict]) -> list[DiscoverySpec]:
        """One discovery sweep per pretrained backbone, its encoders built on that backbone."""
        if self.discover is None:
            return []
        out = []
        for r in sorted(rows, key=lambda r: r["run_name"]):
            configs = tuple(dataclasses.replace(c, arch=r["arch"], width=r["width"], backbone_ckpt=r["backbone"])
                            for c in self.discover.configs)
            name = f"{self.name}-discovery" + (f"-{r['label']}" if r["label"] else "")
            out.append(dataclasses.replace(self.discover, name=name, configs=configs))
        return out


@dataclass(frozen=True)
class PretrainTrial:
    spec: str
    dataset: DatasetSpec
    data_id: str
    config: SimCLRConfig
    varying: tuple[str, ...]
    sweep_dir: str

    @property
    def key(self) -> str:
        # The AS holdout rule decides which images pretraining may see.
        data = {"config": to_plain(self.config), "dataset": self.data_id, "holdout_rule": HOLDOUT_RULE}
        return "pretrain__" + digest(data)

    @property
    def label(self) -> str:
        """The grid point, e.g. 'temperature-0.2' ('' for a single config)."""
        return grid_label(self.config, self.varying)

    @property
    def run_name(self) -> str:
        return f"{self.spec}__pretrain__seed{self.config.seed}" + (f"__{self.label}" if self.label else "")

    @property
    def out_dir(self) -> Path:
        return Path(self.sweep_dir) / "pretrained" / self.key

    def to_config(self) -> dict:
        return to_plain(self)

    @classmethod
    def from_config(cls, c: dict) -> "PretrainTrial":
        return from_plain(cls, c)


def _discover(data: dict, configs: tuple[SimCLRConfig, ...], origin: str) -> DiscoverySpec | None:
    """The discovery sweep's template (backbone_ckpt filled in per backbone by follow_ups)."""
    raw = data.pop("discovery", None)
    rest = {k: data.pop(k) for k in DISCOVERY_KEYS[1:] if k in data}
    if raw is None:
        if rest:
            raise SpecError(f"{origin}: {', '.join(rest)}: only with a discovery: section (what to discover on "
                            "the pretrained backbone); add one or remove them")
        return None
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: discovery must be a mapping of DiscoveryConfig fields to values")
    for key in DERIVED:
        if key in raw:
            raise SpecError(f"{origin}: discovery.{key} comes from the pretraining (pretrain.arch, pretrain.width, "
                            "the backbone it exports); remove it")
    if raw.get("backbone_input", "unit") != "unit":
        raise SpecError(f"{origin}: discovery.backbone_input must be unit: the pretrained backbone saw pixels in "
                        "[0, 1]; remove it")
    discovery = {"freeze_backbone": True, **raw, "backbone_input": "unit", "arch": configs[0].arch,
                 "width": configs[0].width}
    base = {f.name: data[f.name] for f in dataclasses.fields(SweepBase) if f.name in data}
    base["name"] = f"{base.get('name', SweepBase.name)}-discovery"
    return parse_discovery_spec({**base, **rest, "discovery": discovery}, origin)


def parse_pretrain_spec(data: dict, origin: str) -> PretrainSpec:
    data = dict(data)
    raw = data.pop("pretrain")
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: pretrain must be a mapping of SimCLRConfig fields to values")
    configs = tuple(build(SimCLRConfig, point, "pretrain", origin) for point in grid(raw))
    if len({(c.arch, c.width) for c in configs}) > 1 and "discovery" in data:
        raise SpecError(f"{origin}: pretrain sweeps several architectures or widths; discovery on them needs one "
                        "of each: sweep one per spec")
    discover = _discover(data, configs, origin)
    spec = checked_data(resolve_paths(build(PretrainSpec, data, "", origin, shown=("pretrain",) + DISCOVERY_KEYS,
                                            configs=configs, discover=discover)), origin)
    if discover is not None:  # one experiment for the whole chain
        spec = dataclasses.replace(spec, discover=dataclasses.replace(discover, tracking=spec.tracking))
    return spec


def pretrain_spec_data(spec: PretrainSpec) -> dict:
    """The resolved spec in the YAML shape the loader reads."""
    data = to_plain(spec)
    data["pretrain"] = grid_of(data.pop("configs"))
    data.pop("discover")
    if spec.discover is not None:
        found = discovery_spec_data(spec.discover)
        data["discovery"] = {k: v for k, v in found["discovery"].items() if k not in DERIVED}
        data.update({k: found[k] for k in DISCOVERY_KEYS[1:] if found.get(k) is not None})
    return data
