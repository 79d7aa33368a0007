"""MLflow tracking: one experiment, one parent run per sweep, one child run per trial.

Everything goes through an explicit `MlflowClient` bound to one tracking URI, never through
mlflow's global active-run state or MLFLOW_EXPERIMENT_ID, so trials and sweeps cannot leak
into each other's experiments. The driver creates the store and experiment before any trial
runs (concurrent first use of a SQLite store races on its schema migration).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import time
from pathlib import Path
from typing import Iterable

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from orchestrator.specs.io import digest
from orchestrator.tracking.mlflow_ui import ui_tags
from orchestrator.tracking.tags import KEY_TAG

PARENT_FILE = "mlflow.json"
# The store's first use narrates its schema migration at INFO; a sweep's output has no use for it.
logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)


def default_artifact_root(uri: str) -> str | None:
    """For a SQLite store, artifacts go beside the database file (not into a trial's cwd)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()
    return None


class Tracker:
    def __init__(self, uri: str, experiment: str):
        self.uri = uri
        with store_lock(uri):  # concurrent first use of a SQLite store races on its schema migration
            self.client = MlflowClient(tracking_uri=uri)
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                self.experiment_id = self.client.create_experiment(experiment, default_artifact_root(uri),
                                                                   tags=ui_tags())
            else:
                if exp.lifecycle_stage == "deleted":
                    self.client.restore_experiment(exp.experiment_id)
                self.experiment_id = exp.experiment_id
                for tag, value in ui_tags().items():  # an experiment made by hand, or by an older taskdisc
                    if tag not in exp.tags:
                        self.client.set_experiment_tag(self.experiment_id, tag, value)

    def parent_run(self, sweep_dir: Path, name: str, params: dict, spec_file: Path) -> str:
        """The parent run of this resolved spec in the sweep folder: reopened when the same spec runs
        again (a resume), a new one when it differs (`--set`), so a parent's params always describe
        the children it shows. `mlflow.json` maps spec identities to parent runs."""
        spec_id = digest(params)
        state = sweep_dir / PARENT_FILE
        saved = json.loads(state.read_text()) if state.is_file() else {}
        parents = saved.get("parents", {}) if saved.get("uri") == self.uri else {}
        rid = parents.get(spec_id)
        if rid and self.exists(rid):
            self.client.update_run(rid, status="RUNNING")
        else:
            run = self.client.create_run(self.experiment_id, run_name=name,
                                         tags={"taskdisc.sweep": name, "taskdisc.spec": spec_id})
            rid = run.info.run_id
            self.client.log_batch(rid, params=[Param(k, _text(v)[:6000]) for k, v in sorted(params.items())])
            self.client.log_artifact(rid, str(spec_file))
            parents[spec_id] = rid
        sweep_dir.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"uri": self.uri, "experiment_id": self.experiment_id, "parent_run_id": rid,
                                     "parents": parents}))
        return rid

    def exists(self, run_id: str) -> bool:
        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
        except MlflowException:
            return False

    def children(self, parent_id: str, unfinished: bool = False) -> list:
        """Every active child run of `parent_id` (only those not FINISHED: `unfinished`), page by page (a
        sweep may have many thousands: listing 5,000 takes ~17 s here, their unfinished ones a query)."""
        runs, token = [], None
        where = f"tags.{MLFLOW_PARENT_RUN_ID} = '{parent_id}'"
        where += " and attributes.status != 'FINISHED'" if unfinished else ""
        while True:
            page = self.client.search_runs([self.experiment_id], where, max_results=5000, page_token=token)
            runs += list(page)
            token = page.token
            if not token:
                return runs

    def start_child(self, parent_id: str, run_name: str, params: dict, key: str, replaces: list[str] = (),
                    tags: dict | None = None) -> str:
        """A new child run for trial `key`; the runs it `replaces` (the trial's earlier, unfinished
        attempts) are deleted, so the parent holds one run per trial."""
        for old in replaces:
            self.client.delete_run(old)
        run = self.client.create_run(self.experiment_id, run_name=run_name,
                                     tags={**(tags or {}), MLFLOW_PARENT_RUN_ID: parent_id, KEY_TAG: key})
        if params:
            self.log_batch(run.info.run_id, [], params)
        return run.info.run_id

    def log_batch(self, run_id: str, batch: list, params: dict | None = None) -> None:
        """Metrics of several steps ([metrics, step, timestamp ms] each) and `params`, in as few writes as
        MLflow's batch limit allows (1,000 metrics, 100 params a call)."""
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), ts or now, step) for m, step, ts in batch for k, v in m.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)]
        params = [Param(k, _text(v)[:6000]) for k, v in sorted((params or {}).items())]
        while metrics or params:
            self.client.log_batch(run_id, metrics=metrics[:1000], params=params[:100])
            metrics, params = metrics[1000:], params[100:]

    def log_inputs(self, run_id: str, inputs: list[dict]) -> None:
        """Each input (name, digest, source) as a training dataset of the run: MLflow's UI lists it,
        and runs with the same digest trained on the same labels."""
        if inputs:
            self.client.log_inputs(run_id, [DatasetInput(Dataset(i["name"], i["digest"], "taskdisc", i["source"]),
                                                         [InputTag("mlflow.data.context", "train")])
                                            for i in inputs])

    def finish(self, run_id: str, failed: bool = False, status: str | None = None) -> None:
        self.client.set_terminated(run_id, status=status or RunStatus.to_string(
            RunStatus.FAILED if failed else RunStatus.FINISHED))

    def log_artifacts(self, run_id: str, paths: Iterable[Path], folder: str | None = None) -> None:
        for p in paths:
            self.client.log_artifact(run_id, str(p), artifact_path=folder)


@contextlib.contextmanager
def store_lock(uri: str):
    """An exclusive lock beside a SQLite store while it is opened (other stores need none)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri[len("sqlite:///"):])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)
