"""Sweep kinds by name: the one place the CLI, `validate`, `fields`, `results`, launch and the record
learn what a spec is and how its sweep runs.

A spec names its kind in its top-level `kind:` key. Each kind is one package here whose `__init__.py`
declares it (`KIND = SweepKind(...)`): its spec and trial dataclasses, how YAML becomes its spec and
back, its Tune adapter, what ends its sweep, how `taskdisc results` summarises its record and which
follow-up sweeps it runs. Adding a kind is its package and one line in `PACKAGES`.
"""
from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from orchestrator.specs.io import SpecError, apply_override, read_yaml

# The kinds, in the order `taskdisc fields` lists them; each names a package of this one.
PACKAGES = ("agreement", "splits", "discovery", "randnet", "pretrain")

KIND_KEY = "kind"  # the top-level spec key that names the kind


@dataclass(frozen=True)
class SweepKind:
    name: str  # the value of a spec's `kind:`
    doc: str  # one line: what a sweep of this kind does
    spec: type  # its spec dataclass (a SweepBase)
    trial: type  # its trial dataclass (key, run_name; made by spec.iter_trials())
    parse: Callable[[dict, str], Any]  # (YAML mapping without `kind`, origin) -> spec; SpecError on bad input
    dump: Callable[[Any], dict]  # spec -> the YAML mapping `parse` reads: saved with the results, logged to MLflow
    adapter: Callable[[], Any]  # -> its Tune adapter (trials/api.py); called when a sweep runs
    finish: Callable  # (spec, rows, log, complete): tables, figures and the parent run at the sweep's end
    summarize: Callable[[list, int], str]  # (record rows, how many top tasks) -> what `taskdisc results` prints
    example: Callable[[str], dict]  # a spec of a few seconds' sweep on the image folder at `root` (tests run it)
    sections: dict[str, type] = field(default_factory=dict)  # `taskdisc fields` sections: title -> dataclass
    made: str | None = None  # for kinds whose trials export files: what they made, e.g. "... under {dir}/x"
    follow_ups: tuple[tuple[str, str], ...] = ()  # (spec field, label) of the sweeps run on what it made
    compare: Callable[[list, str, str], str] | None = None  # (rows, set a, set b) -> a line: `results --compare`

    def summary(self, rows: list[dict], top: int, compare: tuple[str, str] | None = None) -> str:
        text = self.summarize(rows, top)
        if compare:
            if self.compare is None:
                able = ", ".join(k.name for k in kinds().values() if k.compare is not None)
                raise SpecError(f"--compare needs a sweep of task sets to compare (kind {able}); this is a "
                                f"{self.name} sweep")
            text += "\n" + self.compare(rows, *compare)
        return text

    def label_follow_ups(self, spec) -> str:
        """The sweeps that follow `spec`'s trials, e.g. 'discovery on each backbone, then the score sweep'."""
        given = [(label, getattr(spec, name)) for name, label in self.follow_ups
                 if getattr(spec, name, None) is not None]
        text = " and ".join(label for label, _ in given) or "nothing more"
        for _, value in given:  # a follow-up that is a sweep with follow-ups of its own (pretraining's discovery)
            kind = kind_of(value, None)
            if kind is not None and kind.follow_ups:
                text += f", then {kind.label_follow_ups(value)}"
        return text


_KINDS: dict[str, SweepKind] = {}


def kinds() -> dict[str, SweepKind]:
    """Every registered kind by name (the packages' declarations, imported on first use)."""
    if not _KINDS:
        for package in PACKAGES:
            register(importlib.import_module(f"{__name__}.{package}").KIND)
    return _KINDS


def register(kind: SweepKind) -> SweepKind:
    """Add `kind` (a package's declaration, or one made elsewhere, e.g. in a test) to the registry."""
    if not _KINDS and kind.name not in PACKAGES:
        kinds()  # the packages' kinds come first
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    kinds().pop(name, None)


def kind_named(name: Any, origin: str) -> SweepKind:
    known = kinds()
    if name not in known:
        choices = ", ".join(known)
        raise SpecError(f"{origin}: missing key kind; add `kind: <one of {choices}>` at the top of the spec"
                        if name is None else f"{origin}: kind={name!r} is unknown; choose one of {choices}")
    return known[name]


_STRICT = object()


def kind_of(spec, default: Any = _STRICT) -> SweepKind:
    """The kind whose spec class `spec` is (`default` if none is, when given)."""
    for kind in kinds().values():
        if type(spec) is kind.spec:
            return kind
    if default is not _STRICT:
        return default
    raise TypeError(f"{type(spec).__name__} is not the spec of a registered sweep kind")


def parse_spec(data: dict, origin: str):
    """The spec of the YAML mapping `data` (read once, overrides applied), by its `kind:`."""
    data = dict(data)
    return kind_named(data.pop(KIND_KEY, None), origin).parse(data, origin)


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = (), data: dict | None = None):
    """Load (or take the already read `data` of `path`), override (`protocol.epochs=3`) and validate a spec
    of any kind; raises SpecError."""
    data = copy.deepcopy(read_yaml(path) if data is None else data)  # overrides never reach the caller's
    given: set[str] = set()
    for assignment in overrides:
        key = assignment.partition("=")[0].strip()
        if key in given:
            raise SpecError(f"--set {key}= is given twice; the first would be dropped: keep one")
        given.add(key)
        apply_override(data, assignment)
    return parse_spec(data, str(path))


def spec_data(spec) -> dict:
    """The resolved spec as the YAML mapping its kind reads, `kind:` first."""
    return {KIND_KEY: kind_of(spec).name, **kind_of(spec).dump(spec)}
