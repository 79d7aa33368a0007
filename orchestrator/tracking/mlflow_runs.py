"""MLflow tracking: one experiment, one parent run per sweep, one child run per trial.

Everything goes through an explicit `MlflowClient` bound to one tracking URI, never through
mlflow's global active-run state or MLFLOW_EXPERIMENT_ID, so trials and sweeps cannot leak
into each other's experiments. The driver creates the store and experiment before any trial
runs (concurrent first use of a SQLite store races on its schema migration).
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Iterable

from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

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
        self.client = MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            self.experiment_id = self.client.create_experiment(experiment, default_artifact_root(uri))
        else:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            self.experiment_id = exp.experiment_id

    def parent_run(self, sweep_dir: Path, name: str, params: dict, spec_file: Path) -> str:
        """The sweep's parent run: reopened when the sweep resumes, else created with the spec."""
        state = sweep_dir / PARENT_FILE
        if state.is_file():
            saved = json.loads(state.read_text())
            if saved.get("uri") == self.uri and self._exists(saved["parent_run_id"]):
                self.client.update_run(saved["parent_run_id"], status="RUNNING")
                self._kill_stale_children(saved["parent_run_id"])
                return saved["parent_run_id"]
        run = self.client.create_run(self.experiment_id, run_name=name, tags={"taskdisc.sweep": name})
        rid = run.info.run_id
        self.client.log_batch(rid, params=[Param(k, _text(v)[:6000]) for k, v in sorted(params.items())])
        self.client.log_artifact(rid, str(spec_file))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"uri": self.uri, "experiment_id": self.experiment_id, "parent_run_id": rid}))
        return rid

    def _exists(self, run_id: str) -> bool:
        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
        except MlflowException:
            return False

    def _kill_stale_children(self, parent_id: str) -> None:
        """Child runs left RUNNING by a killed driver are marked KILLED; their trials run again."""
        stale = self.client.search_runs([self.experiment_id], filter_string=(
            f"tags.mlflow.parentRunId = '{parent_id}' and attributes.status = 'RUNNING'"))
        for run in stale:
            self.client.set_terminated(run.info.run_id, status="KILLED")

    def start_child(self, parent_id: str, run_name: str, params: dict) -> str:
        run = self.client.create_run(self.experiment_id, run_name=run_name,
                                     tags={"mlflow.parentRunId": parent_id})
        self.client.log_batch(run.info.run_id, params=[Param(k, _text(v)[:6000]) for k, v in sorted(params.items())])
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: dict, step: int) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def finish(self, run_id: str, failed: bool = False) -> None:
        self.client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.FAILED if failed else RunStatus.FINISHED))

    def log_artifacts(self, run_id: str, paths: Iterable[Path], folder: str | None = None) -> None:
        for p in paths:
            self.client.log_artifact(run_id, str(p), artifact_path=folder)

    def child_runs(self, parent_id: str) -> list:
        return self.client.search_runs([self.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
                                       max_results=10000)


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)
