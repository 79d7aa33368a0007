"""`taskdisc ui` serves the MLflow UI on loopback for the sweep's store."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from mlflow.tracking import MlflowClient

from sweep_helpers import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serving(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_ui_serves_the_store_on_loopback(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).create_experiment("ui-check")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "ui", "--uri", uri, "--port", str(port)],
                            cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, body = time.time() + 90, None
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=ui-check",
                        timeout=2) as r:
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert body is not None and "ui-check" in body
        proc.terminate()  # SIGTERM to the `taskdisc ui` process alone must stop the server
        proc.wait(timeout=30)
        deadline = time.time() + 30
        while time.time() < deadline and serving(port):
            time.sleep(0.5)
        assert not serving(port)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_ui_without_a_store_exits_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "orchestrator", "ui"], cwd=tmp_path, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert out.returncode == 2 and "no MLflow store" in out.stderr
