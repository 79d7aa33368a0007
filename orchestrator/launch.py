"""Run a sweep end to end: check its inputs, skip what the record holds, fit the rest under Tune,
publish results.

Agreement sweeps score tasks and split sweeps train on splits; discovery and random-network sweeps
export tasks and splits and, when their spec says so, run follow-up agreement or split sweeps on them.
Every sweep's inputs are checked (`spec.preflight`) before its folder is touched or Ray starts, and
its folder is held by one driver at a time.
"""
from __future__ import annotations

import functools
from pathlib import Path

from orchestrator.specs.discovery import DiscoverySpec, discovery_spec_data, plain_discovery_spec
from orchestrator.specs.randnet import RandomNetSpec, plain_randnet_spec, randnet_spec_data
from orchestrator.tracking.record import Record
from orchestrator.results.agreement import finish_exports, finish_sweep
from orchestrator.specs.agreement import SweepSpec, plain_spec, spec_data
from orchestrator.results.splits import finish_splits
from orchestrator.specs.splits import SplitSweepSpec, plain_split_spec, split_spec_data
from orchestrator.specs.io import flatten
from orchestrator.tracking.sweep_lock import sweep_lock
from orchestrator.tracking.sweep_log import SweepLog


# The resolved spec in the YAML shape its loader reads, per spec kind: saved with the results and
# logged as the parent run's params (whose digest names the parent run).
SPEC_DATA = {SweepSpec: spec_data, SplitSweepSpec: split_spec_data, DiscoverySpec: discovery_spec_data,
             RandomNetSpec: randnet_spec_data}


def spec_params(spec) -> dict:
    return flatten(SPEC_DATA[type(spec)](spec))


def open_sweep(spec, text: str, params: dict) -> tuple[Path, Record, SweepLog]:
    """The sweep folder with the resolved spec saved, its record, and its MLflow log (whose parent
    run the driver creates before any trial logs)."""
    sweep_dir = Path(spec.sweep_dir)
    spec_file = sweep_dir / "spec.yaml"
    spec_file.write_text(text)
    log = SweepLog(sweep_dir, spec.tracking.uri, spec.experiment, spec.name, params, spec_file)
    return sweep_dir, Record(sweep_dir), log


def run_sweep(spec: SweepSpec, address: str | None = None, callbacks: list | None = None,
              origin: str | None = None) -> list[dict]:
    """Run every trial of `spec` not yet in its record; returns the record rows of this spec.
    `origin` (the spec's file) starts the line of an input error."""
    return _run("agreement", spec, plain_spec(spec), spec_data(spec), finish_sweep, address, callbacks, origin)


def run_splits(spec: SplitSweepSpec, address: str | None = None, callbacks: list | None = None,
               origin: str | None = None) -> list[dict]:
    """Train on every split of `spec` not yet recorded; returns the record rows of this spec."""
    return _run("split", spec, plain_split_spec(spec), split_spec_data(spec), finish_splits, address, callbacks,
                origin)


def run_discovery(spec: DiscoverySpec, address: str | None = None, callbacks: list | None = None,
                  origin: str | None = None) -> tuple[list[dict], list[tuple]]:
    """Run the discovery trials not yet recorded, then the follow-up sweeps on what they found
    (`score:`, `splits:`); returns (discovery rows, [(follow-up spec, its rows), ...])."""
    return _run_then("discovery", spec, plain_discovery_spec(spec), discovery_spec_data(spec), address, callbacks,
                     origin)


def run_randnet(spec: RandomNetSpec, address: str | None = None, callbacks: list | None = None,
                origin: str | None = None) -> tuple[list[dict], list[tuple]]:
    """Score the images with each random network not yet recorded and export its split, then train
    on the splits (`splits:`); returns (randnet rows, [(follow-up spec, its rows), ...])."""
    return _run_then("randnet", spec, plain_randnet_spec(spec), randnet_spec_data(spec), address, callbacks,
                     origin)


def _run_then(adapter: str, spec, text: str, data: dict, address, callbacks, origin
              ) -> tuple[list[dict], list[tuple]]:
    """Trials that export files (one row each, written to `<name>.parquet`), then `spec.follow_ups`."""
    rows = _run(adapter, spec, text, data, functools.partial(finish_exports, kind=adapter), address, callbacks,
                origin)
    if len(rows) < spec.trial_count():
        return rows, []
    return rows, [(follow, run_any(follow, address, callbacks)) for follow in spec.follow_ups(rows)]


def run_any(spec, address: str | None = None, callbacks: list | None = None, origin: str | None = None
            ) -> list[dict]:
    """Run an agreement or split sweep (the kinds whose result is one row per trial)."""
    return (run_splits if isinstance(spec, SplitSweepSpec) else run_sweep)(spec, address, callbacks, origin)


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
        fit(adapter, (t.to_config() for t in spec.iter_trials() if t.key not in done), todo, files, spec, record,
            log, total, address, callbacks)
    keys = {t.key for t in spec.iter_trials()}
    return [r for r in record.rows() if r["key"] in keys]
