"""Run a sweep end to end: skip what the record holds, fit the rest under Tune, publish results.

Agreement sweeps score tasks and split sweeps train on splits; discovery and random-network sweeps
export tasks and splits and, when their spec says so, run follow-up agreement or split sweeps on them.
"""
from __future__ import annotations

from pathlib import Path

from orchestrator.specs.discovery import DiscoverySpec, discovery_spec_data, plain_discovery_spec
from orchestrator.specs.randnet import RandomNetSpec, plain_randnet_spec, randnet_spec_data
from orchestrator.tracking.record import Record
from orchestrator.results.agreement import finish_exports, finish_sweep
from orchestrator.specs.agreement import SweepSpec, plain_spec, spec_data
from orchestrator.results.splits import finish_splits
from orchestrator.specs.splits import SplitSweepSpec, plain_split_spec, split_spec_data
from orchestrator.specs.io import flatten
from orchestrator.tracking.mlflow_runs import Tracker


def open_sweep(spec, text: str, params: dict) -> tuple[Path, Record, Tracker, str]:
    """The sweep folder with the resolved spec saved, its record, and its MLflow parent run
    (created by the driver before any trial logs)."""
    sweep_dir = Path(spec.sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    spec_file = sweep_dir / "spec.yaml"
    spec_file.write_text(text)
    tracker = Tracker(spec.tracking.uri, spec.experiment)
    return sweep_dir, Record(sweep_dir), tracker, tracker.parent_run(sweep_dir, spec.name, params, spec_file)


def run_sweep(spec: SweepSpec, address: str | None = None, callbacks: list | None = None) -> list[dict]:
    """Run every trial of `spec` not yet in its record; returns the record rows of this spec."""
    sweep_dir, record, tracker, parent_id = open_sweep(spec, plain_spec(spec), flatten(spec_data(spec)))
    trials = spec.trials()
    rows = _run_missing("agreement", spec, trials, sweep_dir, record, tracker, parent_id, address, callbacks)
    finish_sweep(spec, rows, tracker, parent_id, complete=len(rows) == len(trials))
    return rows


def run_splits(spec: SplitSweepSpec, address: str | None = None, callbacks: list | None = None) -> list[dict]:
    """Train on every split of `spec` not yet recorded; returns the record rows of this spec."""
    sweep_dir, record, tracker, parent_id = open_sweep(spec, plain_split_spec(spec), flatten(split_spec_data(spec)))
    trials = spec.trials()
    rows = _run_missing("split", spec, trials, sweep_dir, record, tracker, parent_id, address, callbacks)
    finish_splits(spec, rows, tracker, parent_id, complete=len(rows) == len(trials))
    return rows


def run_discovery(spec: DiscoverySpec, address: str | None = None, callbacks: list | None = None
                  ) -> tuple[list[dict], list[tuple]]:
    """Run the discovery trials not yet recorded, then the follow-up sweeps on what they found
    (`score:`, `splits:`); returns (discovery rows, [(follow-up spec, its rows), ...])."""
    return _run_then("discovery", spec, plain_discovery_spec(spec), discovery_spec_data(spec), address, callbacks)


def run_randnet(spec: RandomNetSpec, address: str | None = None, callbacks: list | None = None
                ) -> tuple[list[dict], list[tuple]]:
    """Score the images with each random network not yet recorded and export its split, then train
    on the splits (`splits:`); returns (randnet rows, [(follow-up spec, its rows), ...])."""
    return _run_then("randnet", spec, plain_randnet_spec(spec), randnet_spec_data(spec), address, callbacks)


def _run_then(adapter: str, spec, text: str, data: dict, address, callbacks) -> tuple[list[dict], list[tuple]]:
    """Trials that export files (one row each, written to `<name>.parquet`), then `spec.follow_ups`."""
    sweep_dir, record, tracker, parent_id = open_sweep(spec, text, flatten(data))
    trials = spec.trials()
    rows = _run_missing(adapter, spec, trials, sweep_dir, record, tracker, parent_id, address, callbacks)
    complete = len(rows) == len(trials)
    finish_exports(spec, adapter, rows, tracker, parent_id, complete)
    if not complete:
        return rows, []
    return rows, [(follow, run_any(follow, address, callbacks)) for follow in spec.follow_ups(rows)]


def run_any(spec, address: str | None = None, callbacks: list | None = None) -> list[dict]:
    """Run an agreement or split sweep (the kinds whose result is one row per trial)."""
    return (run_splits if isinstance(spec, SplitSweepSpec) else run_sweep)(spec, address, callbacks)


def _run_missing(adapter: str, spec, trials: list, sweep_dir: Path, record: Record, tracker: Tracker,
                 parent_id: str, address: str | None, callbacks: list | None) -> list[dict]:
    """Fit the trials whose key is not in the record; return the record rows of all `trials`."""
    done = record.done_keys()
    todo = [t for t in trials if t.key not in done]
    print(f"{spec.name}: {len(trials)} trials, {len(trials) - len(todo)} already recorded, {len(todo)} to run "
          f"(sweep folder {sweep_dir})", flush=True)
    if todo:
        from orchestrator.sweep import fit  # Ray is imported only when there is something to run
        fit(adapter, [t.to_config() for t in todo], spec, record, tracker, parent_id, len(trials),
            len(trials) - len(todo), address, callbacks)
    keys = {t.key for t in trials}
    return [r for r in record.rows() if r["key"] in keys]
