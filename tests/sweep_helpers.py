"""Helpers for the orchestrator tests: tiny specs on the synthetic dataset, CLI runs, MLflow reads."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]


def tiny_spec(tmp_path: Path, data: Path, name: str = "tiny", **overrides) -> Path:
    """A spec of 4 real + 2 random tasks (6 trials) of a small MLP on the synthetic dataset."""
    spec = {
        "kind": "agreement",
        "name": name,
        "dataset": {"name": "imagefolder", "root": str(data)},
        "protocol": {"arch": "mlp", "width": 0.125, "epochs": 3, "batch_size": 64, "holdout": 60,
                     "compile": "off"},
        "tasks": {"real": "0-3", "random": [0, 1]},
        "seeds": [0],
        "resources": {"cpus": 1},
        "concurrency": 2,
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        "output_dir": str(tmp_path / "runs"),
    }
    return write_spec(tmp_path, name, spec, overrides)


def write_spec(tmp_path: Path, name: str, spec: dict, overrides: dict) -> Path:
    """`spec` with `overrides` (dotted keys, e.g. 'protocol.epochs') written to `tmp_path/<name>.yaml`."""
    for key, value in overrides.items():
        node = spec
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def cli(*args: str, cwd: Path, address: str | None = None, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    if address:
        env["RAY_ADDRESS"] = address
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, **popen)


def child_runs(uri: str, experiment: str) -> tuple[list, list]:
    """(parent runs, child runs) of an experiment."""
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children
