"""Run a sweep of any kind end to end: check its inputs, skip what the record holds, fit the rest
under Tune, publish results, then the follow-up sweeps its kind runs on what it exported.

What differs between kinds comes from the kind registry (`orchestrator/kinds/`). Every sweep's inputs
are checked (`spec.preflight`) before its folder is touched or Ray starts, and its folder is held by
one driver at a time.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from orchestrator.faults import attach
from orchestrator.kinds import kind_of, spec_data
from orchestrator.specs.io import flatten
from orchestrator.specs.preflight import check_spec
from orchestrator.tracking.record import Record
from orchestrator.tracking.sweep_lock import sweep_lock
from orchestrator.tracking.sweep_log import SweepLog


def spec_params(spec) -> dict:
    """The resolved spec as the parent run's MLflow params."""
    return flatten(spec_data(spec))


def open_sweep(spec, text: str, params: dict) -> tuple[Path, SweepLog]:
    """The sweep folder with the resolved spec saved, and its MLflow log (whose parent run the driver
    creates before any trial logs)."""
    sweep_dir = Path(spec.sweep_dir)
    spec_file = sweep_dir / "spec.yaml"
    spec_file.write_text(text)
    log = SweepLog(sweep_dir, spec.tracking.uri, spec.experiment, spec.name, params, spec_file)
    return sweep_dir, log


def run_sweep(spec, address: str | None = None, callbacks: list | None = None, origin: str | None = None
              ) -> list[tuple[Any, list[dict]]]:
    """Run every trial of `spec` not yet in its record, then, once all have finished, the follow-up
    sweeps on what they exported (`score:`, `splits:`, discovery on pretrained backbones), depth
    first. Returns every sweep that ran with its record rows, `spec` first. `origin` (the spec's
    file) starts the line of an input error."""
    kind = kind_of(spec)
    rows = _run(kind, spec, address, callbacks, origin)
    out = [(spec, rows)]
    if kind.made and len(rows) == spec.trial_count():
        for follow in spec.follow_ups(rows):
            out += run_sweep(follow, address, callbacks)
    return out


def _run(kind, spec, address, callbacks, origin) -> list[dict]:
    check_spec(spec, origin or spec.name)
    data = spec_data(spec)
    with sweep_lock(Path(spec.sweep_dir)) as lock:
        record = Record(spec.sweep_dir)
        try:
            sweep_dir, log = open_sweep(spec, yaml.safe_dump(data, sort_keys=False), flatten(data))
            rows = _run_missing(kind, spec, sweep_dir, record, log, address, callbacks, lock)
            kind.finish(spec, rows, log, complete=len(rows) == spec.trial_count())
        except BaseException as e:  # a signal, a full disk, a bug: the fault path says where it stopped
            attach(e, spec, record)
            raise
        waiting = log.flush()
        if waiting:
            print(f"{waiting} runs' MLflow writes wait in {log.outbox}: `taskdisc sync {sweep_dir}` writes them "
                  "once MLflow answers (so does the next sweep of this spec)", flush=True)
    return rows


def _run_missing(kind, spec, sweep_dir: Path, record: Record, log: SweepLog, address: str | None,
                 callbacks: list | None, lock) -> list[dict]:
    """Fit the trials whose key is not in the record; return the record rows of all the spec's trials."""
    adapter = kind.adapter()
    done = spec.resumable(record.done_keys())
    # One pass for the keys of all trials (the rows returned), how many to run and their input files; Tune's
    # feed then makes the configs of those to run as it asks for them, so a grid of millions is never held.
    keys, todo, inputs = set(), 0, {}
    for t in spec.iter_trials():
        keys.add(t.key)
        if t.key not in done:
            todo += 1
            inputs.update(dict.fromkeys(adapter.inputs(t.to_config())))
    total = len(keys)
    trials = f"{total} trial" + ("" if total == 1 else "s")
    print(f"{spec.name}: {trials}, {total - todo} already recorded, {todo} to run "
          f"(sweep folder {sweep_dir})", flush=True)
    if todo:
        from orchestrator.sweep import fit  # Ray is imported only when there is something to run
        files = {p: Path(p).read_bytes() for p in inputs}
        from orchestrator.tracking.writer import writing_beside
        with writing_beside(log, lock):
            fit(adapter, (t.to_config() for t in spec.iter_trials() if t.key not in done), todo, files, spec,
                record, log, total, address, callbacks)
        record.compact()
    return [r for r in record.rows() if r["key"] in keys]
