"""Run a sweep end to end: check its inputs, skip what the record holds, fit the rest under Tune,
publish results.

Agreement sweeps score tasks and split sweeps train on splits; pretraining, discovery and random-network
sweeps export backbones, tasks and splits and, when their spec says so, run follow-up sweeps on them.
Every sweep's inputs are checked (`spec.preflight`) before its folder is touched or Ray starts, and
its folder is held by one driver at a time.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from orchestrator.specs.discovery import DiscoverySpec, discovery_spec_data
from orchestrator.specs.pretrain import PretrainSpec, pretrain_spec_data
from orchestrator.specs.randnet import RandomNetSpec, randnet_spec_data
from orchestrator.tracking.record import Record
from orchestrator.results.agreement import finish_exports, finish_sweep
from orchestrator.specs.agreement import SweepSpec, spec_data
from orchestrator.results.splits import finish_splits
from orchestrator.specs.splits import SplitSweepSpec, split_spec_data
from orchestrator.specs.io import flatten
from orchestrator.tracking.sweep_lock import sweep_lock
from orchestrator.tracking.sweep_log import SweepLog


@dataclass(frozen=True)
class Kind:
    """How a spec kind runs: its trial adapter, its resolved spec (the YAML its loader reads: saved
    with the results, logged as the parent run's params), what ends its sweep, and for kinds whose
    trials export files (follow-ups read them), how to say what they made."""
    adapter: str
    data: Callable[[Any], dict]
    finish: Callable
    made: str | None = None  # e.g. "encoders trained; task tables under {dir}/discovered"


def _exports(kind: str) -> Callable:
    return functools.partial(finish_exports, kind=kind)


KINDS: dict[type, Kind] = {
    SweepSpec: Kind("agreement", spec_data, finish_sweep),
    SplitSweepSpec: Kind("split", split_spec_data, finish_splits),
    DiscoverySpec: Kind("discovery", discovery_spec_data, _exports("discovery"),
                        "encoders trained; task tables under {dir}/discovered"),
    RandomNetSpec: Kind("randnet", randnet_spec_data, _exports("randnet"), "images scored; splits under {dir}/randnet"),
    PretrainSpec: Kind("pretrain", pretrain_spec_data, _exports("pretrain"),
                       "backbones pretrained; state dicts under {dir}/pretrained"),
}


def spec_params(spec) -> dict:
    return flatten(KINDS[type(spec)].data(spec))


def open_sweep(spec, text: str, params: dict) -> tuple[Path, Record, SweepLog]:
    """The sweep folder with the resolved spec saved, its record, and its MLflow log (whose parent
    run the driver creates before any trial logs)."""
    sweep_dir = Path(spec.sweep_dir)
    spec_file = sweep_dir / "spec.yaml"
    spec_file.write_text(text)
    log = SweepLog(sweep_dir, spec.tracking.uri, spec.experiment, spec.name, params, spec_file)
    return sweep_dir, Record(sweep_dir), log


def run_tree(spec, address: str | None = None, callbacks: list | None = None, origin: str | None = None
             ) -> list[tuple[Any, list[dict]]]:
    """Run every trial of `spec` not yet in its record, then, once all have finished, the follow-up
    sweeps on what they exported (`score:`, `splits:`, discovery on pretrained backbones), depth
    first. Returns every sweep that ran with its record rows, `spec` first. `origin` (the spec's
    file) starts the line of an input error."""
    kind = KINDS[type(spec)]
    data = kind.data(spec)
    rows = _run(kind.adapter, spec, yaml.safe_dump(data, sort_keys=False), data, kind.finish, address, callbacks,
                origin)
    out = [(spec, rows)]
    if kind.made and len(rows) == spec.trial_count():
        for follow in spec.follow_ups(rows):
            out += run_tree(follow, address, callbacks)
    return out


def run_sweep(spec: SweepSpec, address: str | None = None, callbacks: list | None = None,
              origin: str | None = None) -> list[dict]:
    """Run every trial of an agreement sweep not yet in its record; returns the record rows of this spec."""
    return run_tree(spec, address, callbacks, origin)[0][1]


def run_splits(spec: SplitSweepSpec, address: str | None = None, callbacks: list | None = None,
               origin: str | None = None) -> list[dict]:
    """Train on every split of `spec` not yet recorded; returns the record rows of this spec."""
    return run_tree(spec, address, callbacks, origin)[0][1]


def _run(adapter: str, spec, text: str, data: dict, finish, address, callbacks, origin) -> list[dict]:
    spec.preflight(origin or spec.name)
    with sweep_lock(Path(spec.sweep_dir)):
        sweep_dir, record, log = open_sweep(spec, text, flatten(data))
        rows = _run_missing(adapter, spec, sweep_dir, record, log, address, callbacks)
        finish(spec, rows, log, complete=len(rows) == spec.trial_count())
        waiting = log.flush()
        if waiting:
            print(f"{waiting} runs' MLflow writes wait in {log.outbox}: `taskdisc sync {sweep_dir}` writes them "
                  "once MLflow answers (so does the next sweep of this spec)", flush=True)
    return rows


def _run_missing(adapter: str, spec, sweep_dir: Path, record: Record, log: SweepLog, address: str | None,
                 callbacks: list | None) -> list[dict]:
    """Fit the trials whose key is not in the record; return the record rows of all the spec's trials."""
    from orchestrator.trials.registry import ADAPTERS
    done = spec.resumable(record.done_keys())
    total, todo, inputs = 0, 0, {}
    for t in spec.iter_trials():  # one pass, nothing kept per trial: a grid of millions stays small
        total += 1
        if t.key not in done:
            todo += 1
            inputs.update(dict.fromkeys(ADAPTERS[adapter].inputs(t.to_config())))
    trials = f"{total} trial" + ("" if total == 1 else "s")
    print(f"{spec.name}: {trials}, {total - todo} already recorded, {todo} to run "
          f"(sweep folder {sweep_dir})", flush=True)
    if todo:
        from orchestrator.sweep import fit  # Ray is imported only when there is something to run
        files = {p: Path(p).read_bytes() for p in inputs}
        from orchestrator.tracking.writer import writing_beside
        with writing_beside(log):
            fit(adapter, (t.to_config() for t in spec.iter_trials() if t.key not in done), todo, files, spec,
                record, log, total, address, callbacks)
        record.compact()
    keys = {t.key for t in spec.iter_trials()}
    return [r for r in record.rows() if r["key"] in keys]
