"""Ray Tune adapter: the agreement trainable, the driver-side callback, and `run_sweep`.

The trainable is a thin wrapper over `trainables.agreement.AgreementRun`: one Tune step is one
epoch. Actors are reused across trials and keep the dataset on their device, so a sweep of
hundreds of tasks loads the images once per actor. The driver-side callback writes the
project's own record (so a killed driver loses nothing finished) and the MLflow runs.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import ray
import torch
from ray import tune

from trainables.agreement import AgreementRun, device_images, split_for
from trainables.data import load_dataset
from trainables.tasks import make_task

from .record import Record
from .results import finish_sweep
from .spec import SweepSpec, TrialSpec, plain_spec, spec_data
from .specio import flatten, to_plain
from .tracking import Tracker

STATE_FILE = "state.pt"


class AgreementTrainable(tune.Trainable):
    """One pair on one task; `step` trains one epoch. The dataset stays loaded across trials."""

    def setup(self, config: dict) -> None:
        self.images: dict[tuple, tuple] = {}
        self.loads = 0
        self._begin(config)

    def _begin(self, config: dict) -> None:
        trial = TrialSpec.from_config(config["trial"])
        torch.set_num_threads(max(1, int(config["threads"])))
        key = (trial.dataset, config["device"], trial.protocol.channels_last)
        if key not in self.images:
            dataset = load_dataset(trial.dataset.name, trial.dataset.root, trial.dataset.download)
            self.images = {key: (dataset, *device_images(dataset, config["device"], trial.protocol.channels_last))}
            self.loads += 1
        dataset, train, test = self.images[key]
        labels = make_task(trial.kind, trial.index, dataset, trial.source, trial.num_classes)
        self.run = AgreementRun(train, test, labels, split_for(dataset, trial.protocol), trial.protocol, trial.seed)

    def step(self) -> dict:
        metrics = self.run.train_epoch()
        metrics["data/loads"] = self.loads
        if self.run.done:
            result = self.run.result()
            metrics.update(result.metrics())
            metrics["result"] = result.to_dict()
            metrics["done"] = True
        return metrics

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        torch.save(self.run.state_dict(), os.path.join(checkpoint_dir, STATE_FILE))

    def load_checkpoint(self, checkpoint_dir: str) -> None:
        self.run.load_state_dict(torch.load(os.path.join(checkpoint_dir, STATE_FILE), weights_only=True,
                                            map_location=self.run.train_images.device))

    def reset_config(self, new_config: dict) -> bool:
        self._begin(new_config)
        return True


EPOCH_KEYS = ("train/", "eval/", "perf/", "data/")


class SweepCallback(tune.Callback):
    """Driver side: MLflow child runs, the record, and one progress line per finished trial."""

    def __init__(self, record: Record, tracker: Tracker, parent_id: str, total: int, done_before: int):
        self.record, self.tracker, self.parent_id = record, tracker, parent_id
        self.total, self.finished = total, done_before
        self.runs: dict[str, str] = {}

    def _run_id(self, trial) -> str:
        if trial.trial_id not in self.runs:
            spec = TrialSpec.from_config(trial.config["trial"])
            params = {"group": spec.group, "kind": spec.kind, "index": spec.index, "seed": spec.seed, "source": spec.source,
                      "num_classes": spec.num_classes, "key": spec.key, "dataset": spec.dataset.name,
                      **{f"protocol.{k}": v for k, v in to_plain(spec.protocol).items()}}
            self.runs[trial.trial_id] = self.tracker.start_child(self.parent_id, spec.run_name, params)
        return self.runs[trial.trial_id]

    def on_trial_start(self, iteration, trials, trial, **info):
        self._run_id(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        metrics = {k: v for k, v in result.items() if k.startswith(EPOCH_KEYS)}
        self.tracker.log_metrics(self._run_id(trial), metrics, step=int(result["epoch"]))

    def on_trial_complete(self, iteration, trials, trial, **info):
        spec = TrialSpec.from_config(trial.config["trial"])
        result = trial.last_result["result"]
        self.record.add(spec, result)
        run_id = self._run_id(trial)
        self.tracker.log_metrics(run_id, {k: v for k, v in trial.last_result.items()
                                          if k.startswith(("eval/", "test/", "task/"))}, step=result["epochs"])
        self.tracker.finish(run_id)
        self.finished += 1
        print(f"[{self.finished}/{self.total}] {spec.run_name}  AS={result['agreement']:.4f}  "
              f"train_acc={min(result['train_acc']):.3f}  holdout_acc={min(result['holdout_acc']):.3f}  "
              f"epochs={result['epochs']}  {result['wall_s']:.1f}s", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.tracker.finish(self._run_id(trial), failed=True)
        print(f"[failed] {TrialSpec.from_config(trial.config['trial']).run_name}: see {trial.local_path}", flush=True)


def connect(address: str | None = None) -> None:
    """Join the cluster at `address` (or $RAY_ADDRESS); otherwise start Ray on this machine."""
    if ray.is_initialized():
        return
    ray.init(address=address or os.environ.get("RAY_ADDRESS"), log_to_driver=False, configure_logging=False)


def run_sweep(spec: SweepSpec, address: str | None = None, callbacks: list | None = None) -> list[dict]:
    """Run every trial of `spec` not yet in its record; returns the record rows of this spec."""
    # MLflow and the record are the logs: no per-trial CSV/JSON/TensorBoard files, and no warnings
    # from Tune's result grid about their absence or about the snapshot forced by num_to_keep.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    sweep_dir = Path(spec.sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    spec_file = sweep_dir / "spec.yaml"
    spec_file.write_text(plain_spec(spec))
    record = Record(sweep_dir)
    trials = spec.trials()
    done = record.done_keys()
    todo = [t for t in trials if t.key not in done]
    print(f"{spec.name}: {len(trials)} trials, {len(trials) - len(todo)} already recorded, {len(todo)} to run "
          f"(sweep folder {sweep_dir})", flush=True)
    tracker = Tracker(spec.tracking.uri, spec.experiment)
    parent_id = tracker.parent_run(sweep_dir, spec.name, flatten(spec_data(spec)), spec_file)
    if todo:
        connect(address)
        run_trials(spec, todo, record, tracker, parent_id, len(trials), len(trials) - len(todo), callbacks or [])
    keys = {t.key for t in trials}
    rows = [r for r in record.rows() if r["key"] in keys]
    finish_sweep(spec, rows, tracker, parent_id, complete=len(rows) == len(trials))
    return rows


def run_trials(spec: SweepSpec, todo: list[TrialSpec], record: Record, tracker: Tracker, parent_id: str,
               total: int, done_before: int, callbacks: list) -> None:
    names = {t.key: t.run_name for t in todo}
    trainable = tune.with_resources(AgreementTrainable, {"cpu": spec.resources.cpus, "gpu": spec.resources.gpus})
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search([t.to_config() for t in todo]), "device": spec.device,
                     "threads": max(1, int(spec.resources.cpus))},
        tune_config=tune.TuneConfig(
            reuse_actors=True, max_concurrent_trials=spec.concurrency,
            trial_name_creator=lambda t: names[TrialSpec.from_config(t.config["trial"]).key],
            trial_dirname_creator=lambda t: TrialSpec.from_config(t.config["trial"]).key),
        run_config=tune.RunConfig(
            name=f"tune-{int(time.time())}", storage_path=str(Path(spec.sweep_dir).resolve() / "tune"),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=spec.checkpoint_every, num_to_keep=1),
            callbacks=[SweepCallback(record, tracker, parent_id, total, done_before), *callbacks], verbose=0))
    tuner.fit()
