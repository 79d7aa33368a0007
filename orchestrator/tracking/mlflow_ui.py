"""What MLflow's UI reads that MLflow has no API for, in one place: the sweep's view of its experiment.

The UI keeps a shared view (sort order, columns) in an experiment tag named after the view's key, and
opens it from an address that names the key; sorting by a metric lists child runs flat instead of
folded under their parent, so the trials come first, best AS first. Both are the UI's conventions,
not API: `tests/test_ui_browser.py` opens the UI of a real sweep in a browser and fails when an MLflow
release changes them.
"""
from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

# MLflow 3.0-3.16's UI opens an experiment of this kind on its training runs; later ones follow the
# workflow switch in the address instead (`view_address`)
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
VIEW_KEY = "taskdisc"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
VIEW = {"orderByKey": "metrics.`eval/agreement`", "orderByAsc": False,
        "selectedColumns": ["attributes.`Dataset`", "metrics.`eval/agreement`", "metrics.`test/acc_0`",
                            "tags.`task_kind`", "tags.`seed`", "tags.`protocol`"]}


def ui_tags() -> dict[str, str]:
    """The experiment tags of a sweep's experiment that its UI view needs."""
    return {KIND_TAG: KIND, VIEW_TAG: json.dumps(VIEW)}


def view_address(base: str, experiment_id: str) -> str:
    """The experiment's trials in MLflow 3's UI: training runs (not its GenAI overview), best AS first."""
    return f"{base}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}&workflowType=machine_learning"


def sweep_experiments(uri: str) -> list[tuple[str, str]]:
    """(name, id) of each experiment in the store that holds sweeps (it carries the view)."""
    return [(e.name, e.experiment_id) for e in MlflowClient(tracking_uri=uri).search_experiments()
            if VIEW_TAG in e.tags]
