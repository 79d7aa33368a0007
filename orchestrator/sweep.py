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
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pyarrow.fs
import ray
from ray import tune
from ray.tune.search import Searcher

from orchestrator.actor_pool import close_gate, pool_gate
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
    """Driver side: MLflow child runs, the record, and one progress line per finished trial."""

    def __init__(self, adapter: Adapter, record: Record, log: SweepLog, total: int, done_before: int,
                 keep_checkpoints: bool = False):
        self.adapter, self.record, self.log = adapter, record, log
        self.total, self.finished = total, done_before
        self.notices: set[str] = set()
        self.described: dict = {}  # trial id -> TrialInfo of live trials
        self.keep_checkpoints = keep_checkpoints  # another trial may still restore from a finished one's

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
            drop_checkpoints(trial)
        self.finished += 1
        print(f"[{self.finished}/{self.total}] {info.run_name}  {done.line}", flush=True)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        """Keep a trial's newest checkpoint only. Tune's own `num_to_keep` would do it, but forces a
        snapshot of the whole experiment (every trial's state) at each trial checkpoint: a cost per trial
        that grows with the sweep. A PBT population keeps them all: an exploit restores the checkpoint its
        donor had at the decision, which may not be the donor's newest by then."""
        if not self.keep_checkpoints:
            drop_checkpoints(trial, keep=checkpoint.path)

    def on_trial_error(self, iteration, trials, trial, **info):
        info = self._last_info(trial)
        self.log.finish(info.key, failed=True)
        print(f"[failed] {info.run_name}: see {trial.local_path}", flush=True)

    def on_experiment_end(self, trials, **info):
        if self.keep_checkpoints:
            for trial in trials:
                drop_checkpoints(trial)


def drop_checkpoints(trial, keep: str | None = None) -> None:
    """Delete a trial's checkpoints (a recorded trial's are dead weight: ~90 MB for an MLP pair), all
    but the one at `keep` when given."""
    storage = trial.storage
    fs = storage.storage_filesystem
    try:
        if keep is None:
            fs.delete_dir(storage.trial_fs_path)
            return
        for info in fs.get_file_info(pyarrow.fs.FileSelector(storage.trial_fs_path)):
            if info.base_name.startswith("checkpoint_") and info.base_name != Path(keep).name:
                fs.delete_dir(info.path)
    except (OSError, FileNotFoundError):
        pass  # already gone, or never written (a trial shorter than checkpoint_every)


def connect(address: str | None = None) -> None:
    """Join the cluster at `address` (or $RAY_ADDRESS; `auto` finds a `ray start` cluster of this machine);
    otherwise start Ray on this machine. Not Ray's own default, which joins whatever cluster
    /tmp/ray/ray_current_cluster last named and waits on it when that cluster is gone."""
    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or "local", log_to_driver=False,
                 configure_logging=False)


def fit(adapter: Adapter, trials: Iterator[dict], count: int, files: dict[str, bytes], sweep, record: Record,
        log: SweepLog, total: int, address: str | None = None, callbacks: list | None = None) -> None:
    """Run `trials` (`count` configs of `adapter`'s kind, produced lazily) under Tune with the resources, concurrency,
    failure and checkpoint settings of `sweep` (any spec with `resources`, `concurrency`,
    `max_failures`, `checkpoint_every`, `device`, `sweep_dir`); `files` are their input files."""
    # MLflow and the record are the logs: no per-trial CSV/JSON/TensorBoard files, and no warnings
    # from Tune's result grid about their absence.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = USER_PENDING or str(min(count, sweep.concurrency or 200))
    connect(address)
    name, options = sweep.scheduler_config() or (None, {})
    kind = SCHEDULERS[name] if name else DEFAULT
    shares = kind.shares_checkpoints
    gate = pool_gate(count, sweep.concurrency, sweep.resources.cpus, sweep.resources.gpus)
    trainable = tune.with_resources(tune.with_parameters(TrialActor, adapter=adapter, files=files, gate=gate),
                                    {"cpu": sweep.resources.cpus, "gpu": sweep.resources.gpus})
    # PBT restores a donor's checkpoint taken at its last step too: Tune's own frequency there
    every = 0 if shares else sweep.checkpoint_every
    constants = {"device": sweep.device, "threads": max(1, int(sweep.resources.cpus)),
                 "checkpoint_every": every}
    if shares:
        space, feed, samples = {"trial": tune.grid_search(list(trials)), **constants}, None, 1
    else:
        space, feed, samples = None, TrialFeed(trials, constants), count
    callback = SweepCallback(adapter, record, log, total, total - count, shares)
    try:
        tune.Tuner(
            trainable,
            param_space=space,
            tune_config=tune.TuneConfig(
                search_alg=feed, num_samples=samples, reuse_actors=True, max_concurrent_trials=sweep.concurrency,
                scheduler=kind.cls(**options),
                trial_name_creator=lambda t: callback.info(t).run_name,
                trial_dirname_creator=lambda t: callback.info(t).key),
            run_config=tune.RunConfig(
                name=f"{sweep.name}-{int(time.time())}",
                storage_path=sweep.storage or str(Path(sweep.sweep_dir) / "tune"),
                failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
                checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=sweep.checkpoint_every if shares else 0,
                                                        checkpoint_at_end=shares),
                callbacks=[callback, *(callbacks or [])],
                verbose=0),
        ).fit()
    finally:
        close_gate(gate)
