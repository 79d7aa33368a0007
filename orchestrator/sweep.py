"""Ray Tune, behind one module: the trial feed, the driver-side callback, `fit` (the generic trial actor
Tune runs is in `trial_actor.py`, the schedulers it is given in `schedulers.py`).

What a trial does is an adapter's business (`trials/`: agreement, discovery, splits, randnet): plain Python
with a worker side (`start` -> a runner with step/done/state_dict/load_state_dict/outcome)
and a driver side (run names, MLflow params, record rows). One Tune step is one runner step.
Actors are reused across trials and keep their dataset on their device.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import ray
from ray import tune
from ray.tune.search import Searcher

from orchestrator.actor_pool import close_gate, pool_gate
from orchestrator.faults import RESERVE, DiskFull, free_bytes, log_path, names_disk_full, ray_logs_to, write_log
from orchestrator.schedulers import DEFAULT, SCHEDULERS
from orchestrator.trial_actor import TrialActor
from orchestrator.trials.api import Adapter
from orchestrator.tracking.record import Record
from orchestrator.tracking.tags import RUN_TAG

if TYPE_CHECKING:  # the sweep's log comes in made: MLflow is imported where it is used
    from orchestrator.tracking.sweep_log import SweepLog

# Tune keeps only one trial pending for a custom search algorithm (two with a concurrency limit);
# an autoscaler starting GPU workers from zero needs to see the queue, as with Tune's own grids.
USER_PENDING = os.environ.get("TUNE_MAX_PENDING_TRIALS_PG")


class TrialFeed(Searcher):
    """Tune's search algorithm here: hands out the sweep's trials one at a time as Tune asks for
    them, so the driver holds the pending and running trials' configs, never the whole grid."""

    def __init__(self, configs: Iterator[dict], constants: dict):
        super().__init__()
        self.configs, self.constants = configs, constants

    def __getstate__(self) -> dict:
        # Tune pickles its search algorithm into experiment snapshots; sweeps resume from their own
        # record, not from those, so the generator stays out of them.
        return {**self.__dict__, "configs": iter(())}

    def suggest(self, trial_id: str) -> dict | str:
        config = next(self.configs, None)
        return Searcher.FINISHED if config is None else {"trial": config, **self.constants}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass  # nothing to learn: the grid is fixed

    def save(self, checkpoint_path: str) -> None:
        pass  # a sweep resumes from its record, not from Tune's snapshots

    def restore(self, checkpoint_path: str) -> None:
        pass


class SweepCallback(tune.Callback):
    """Driver side: MLflow child runs, the record, one progress line per finished trial, the trials'
    checkpoints (only the newest kept), and a full disk turned into one DiskFull that ends the sweep."""

    def __init__(self, adapter: Adapter, record: Record, log: SweepLog, total: int, done_before: int,
                 keep_checkpoints: bool = False):
        self.adapter, self.record, self.log = adapter, record, log
        self.total, self.finished = total, done_before
        self.notices: set[str] = set()
        self.described: dict = {}  # trial id -> TrialInfo of live trials
        self.keep_checkpoints = keep_checkpoints  # another trial may still restore from a finished one's
        self.checkpoints: dict = {}  # trial id -> its checkpoints not yet deleted, oldest first
        self.checkpoint_bytes = 0  # the largest checkpoint a trial asked for: what each running trial writes next

    def info(self, trial):
        """The trial's description, built once per trial (from its config: a few ms each; Tune's name and
        folder for it come from here too) and dropped when it ends (`_last_info`)."""
        if trial.trial_id not in self.described:
            self.described[trial.trial_id] = self.adapter.describe(trial.config["trial"])
        return self.described[trial.trial_id]

    def _last_info(self, trial):
        info = self.info(trial)
        del self.described[trial.trial_id]
        return info

    def on_trial_start(self, iteration, trials, trial, **info):
        info = self.info(trial)
        self.log.start(info.key, info.short_name, info.params, {**info.tags, RUN_TAG: info.run_name})

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "fault" in result:  # the trial's worker found no room for its checkpoint: nothing was written
            raise DiskFull(**result["fault"])
        self.checkpoint_bytes = max(self.checkpoint_bytes, result.get("checkpoint_bytes", 0))
        notice = result.get("notice")
        if notice and notice not in self.notices:
            self.notices.add(notice)
            print(f"taskdisc: notice: {notice}", flush=True)
        key = self.info(trial).key
        if "error" in result.get("outcome", {}):
            return
        for step, metrics in self.adapter.progress(result):
            self.log.metrics(key, metrics, step=step)
        note = self.adapter.note(trial.config["trial"], result)
        if note and not result.get("done"):
            print(f"[{self.finished}/{self.total}] {self.info(trial).run_name}  {note}", flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        config, outcome = trial.config["trial"], trial.last_result.get("outcome")
        info = self._last_info(trial)
        if outcome is not None and "error" in outcome:
            self.log.finish(info.key, failed=True)
            print(f"[failed] {info.run_name}: {outcome['error']} (bad input: not retried)", flush=True)
            return
        # No outcome: the scheduler stopped it; recorded as stopped, so a rerun does not redo it.
        done = (self.adapter.stopped(config, trial.last_result) if outcome is None
                else self.adapter.complete(config, outcome))
        # The record is what a resumed sweep trusts; MLflow's copy waits in the outbox until written.
        self.log.finish_trial(info.key, done.metrics, done.step, done.artifacts,
                              record=lambda: self.record.add(info.key, done.row),
                              inputs=[dataclasses.asdict(i) for i in done.inputs])
        if not self.keep_checkpoints:
            self._drop_checkpoints(trial)
        self.finished += 1
        print(f"[{self.finished}/{self.total}] {info.run_name}  {done.line}", flush=True)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        """Keep a trial's newest checkpoint only. Tune's own `num_to_keep` would do it, but forces a
        snapshot of the whole experiment (every trial's state) at each trial checkpoint: a cost per trial
        that grows with the sweep. A PBT population keeps them all: an exploit restores the checkpoint its
        donor had at the decision, which may not be the donor's newest by then."""
        self.checkpoints.setdefault(trial.trial_id, []).append(checkpoint)
        if not self.keep_checkpoints:
            self._drop_checkpoints(trial, keep=1)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._check_disk(trial, trial_error(trial))  # a retry on a full disk fails again: the sweep stops instead

    def on_trial_error(self, iteration, trials, trial, **info):
        error = trial_error(trial)
        self._check_disk(trial, error)
        info = self._last_info(trial)
        self.log.finish(info.key, failed=True)
        self._drop_checkpoints(trial)  # a failed trial starts afresh on the next sweep
        details = write_log(self.log.sweep_dir, f"trial {info.run_name} failed:\n{error}")
        print(f"[failed] {info.run_name}: see {details}", flush=True)

    def on_experiment_end(self, trials, **info):
        for trial in trials:
            self._drop_checkpoints(trial)

    def _check_disk(self, trial, error: str) -> None:
        """DiskFull if the trial failed on a full disk (`error`: its error's text), or its folder's filesystem
        has no room left for the checkpoints in flight and the sweep's own writes."""
        need = self.checkpoint_bytes * max(1, len(self.described)) + RESERVE
        free = free_bytes(trial.path)
        if (free is not None and free < need) or names_disk_full(error):
            raise DiskFull(trial.path, free or 0, need)

    def _drop_checkpoints(self, trial, keep: int = 0) -> None:
        """Delete a trial's checkpoints but its newest `keep` (a recorded trial's are dead weight: ~90 MB
        for an MLP pair), through the filesystem each checkpoint names."""
        held = self.checkpoints.get(trial.trial_id, [])
        drop, held[:] = held[:len(held) - keep], held[len(held) - keep:]
        for checkpoint in drop:
            try:
                checkpoint.filesystem.delete_dir(checkpoint.path)
            except OSError:
                pass  # already gone
        if not held:
            self.checkpoints.pop(trial.trial_id, None)


def trial_error(trial) -> str:
    """The text of the error Tune recorded for `trial` ('' if none could be read)."""
    try:
        return Path(trial.error_file).read_text() if trial.error_file else ""
    except OSError:
        return ""


def connect(address: str | None = None) -> None:
    """Join the cluster at `address` (or $RAY_ADDRESS; `auto` finds a `ray start` cluster of this machine);
    otherwise start Ray on this machine. Not Ray's own default, which joins whatever cluster
    /tmp/ray/ray_current_cluster last named and waits on it when that cluster is gone."""
    if not ray.is_initialized():
        sigterm = signal.getsignal(signal.SIGTERM)
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or "local", log_to_driver=False,
                 configure_logging=False)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)  # Ray's driver would exit on SIGTERM; the caller's handler stays


def fit(adapter: Adapter, trials: Iterator[dict], count: int, files: dict[str, bytes], sweep, record: Record,
        log: SweepLog, total: int, address: str | None = None, callbacks: list | None = None) -> None:
    """Run `trials` (`count` configs of `adapter`'s kind, produced lazily) under Tune with the resources, concurrency,
    failure and checkpoint settings of `sweep` (any spec with `resources`, `concurrency`,
    `max_failures`, `checkpoint_every`, `device`, `sweep_dir`); `files` are their input files. What Ray and
    Tune log meanwhile goes to the sweep's log file: the screen shows taskdisc's lines."""
    # MLflow and the record are the logs: no per-trial CSV/JSON/TensorBoard files, no warnings from Tune's
    # result grid about their absence, and none of Tune's tables on the screen (verbose=0 still prints some).
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = USER_PENDING or str(min(count, sweep.concurrency or 200))
    name, options = sweep.scheduler_config() or (None, {})
    kind = SCHEDULERS[name] if name else DEFAULT
    with ray_logs_to(log_path(Path(sweep.sweep_dir))):
        connect(address)
        gate = pool_gate(count, sweep.concurrency, sweep.resources.cpus, sweep.resources.gpus)
        try:
            callback = SweepCallback(adapter, record, log, total, total - count, kind.shares_checkpoints)
            tuner(adapter, trials, count, files, sweep, gate, kind, options, callback, callbacks).fit()
        finally:
            close_gate(gate)


def tuner(adapter: Adapter, trials: Iterator[dict], count: int, files: dict[str, bytes], sweep, gate,
          kind, options: dict, callback: SweepCallback, callbacks: list | None) -> tune.Tuner:
    """Tune's Tuner for the sweep: the trial actor, its feed (or PBT's grid), `kind`'s scheduler built from
    `options`, and storage."""
    shares = kind.shares_checkpoints
    trainable = tune.with_resources(tune.with_parameters(TrialActor, adapter=adapter, files=files, gate=gate),
                                    {"cpu": sweep.resources.cpus, "gpu": sweep.resources.gpus})
    # PBT restores a donor's checkpoint taken at its last step too: Tune's own frequency there
    every = 0 if shares else sweep.checkpoint_every
    storage = sweep.storage or str(Path(sweep.sweep_dir) / "tune")
    constants = {"device": sweep.device, "threads": max(1, int(sweep.resources.cpus)),
                 "checkpoint_every": every, "storage": storage}
    if shares:
        space, feed, samples = {"trial": tune.grid_search(list(trials)), **constants}, None, 1
    else:
        space, feed, samples = None, TrialFeed(trials, constants), count
    return tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            search_alg=feed, num_samples=samples, reuse_actors=True, max_concurrent_trials=sweep.concurrency,
            scheduler=kind.cls(**options),
            trial_name_creator=lambda t: callback.info(t).run_name,
            trial_dirname_creator=lambda t: callback.info(t).key),
        run_config=tune.RunConfig(
            name=f"{sweep.name}-{int(time.time())}",
            storage_path=storage,
            failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
            checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=sweep.checkpoint_every if shares else 0,
                                                    checkpoint_at_end=shares),
            callbacks=[callback, *(callbacks or [])],
            verbose=0))
