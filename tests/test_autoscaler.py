"""`cluster.yaml`'s node types under Ray's own autoscaler, on this machine: a head with the file's
head resources and the autoscaler with its fake multi-node provider (worker types of the same
names and min/max workers, fake GPUs, few CPUs, a short idle timeout), token authentication on.
A `taskdisc sweep --address` whose trials ask for a quarter of a GPU must make the autoscaler start
workers from zero, run every trial on a worker (none has CUDA: the trials train on the CPU, with
one notice), record every trial once in the record and in MLflow, and the workers must go away
after the idle timeout. The timeline goes to the terminal, past capture."""
from __future__ import annotations

import collections
import json
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest
import ray
from mlflow.tracking import MlflowClient

from autoscale_cluster import REPO, derived_config, free_port, reset_auth_state, start_head, stop_cluster
from orchestrator.cli import main
from orchestrator.kinds import load_spec
from orchestrator.tracking.record import Record
from sweep_helpers import tiny_spec

pytestmark = [pytest.mark.slow, pytest.mark.own_ray]

IDLE_TIMEOUT_MIN = 0.2
WORKER = {"CPU": 1, "GPU": 1}  # one 1-CPU trial per worker: two trials need two workers
HEAD_NODE_ID = "f" * 51 + "00000"  # the fake provider's head


@pytest.fixture
def autoscaling_cluster(monkeypatch):
    """The head (and through it the autoscaler) of a fresh cluster; all of it is killed afterwards."""
    if ray.is_initialized():
        pytest.fail("a Ray driver is already connected in this process: own_ray tests must run first (conftest.py)")
    token = secrets.token_hex(32)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    reset_auth_state()
    temp_dir = Path(tempfile.mkdtemp(prefix="tdas-", dir="/tmp"))  # short: Unix socket paths live under it
    try:
        port = free_port()
        address = f"{ray.util.get_node_ip_address()}:{port}"
        config = derived_config(REPO / "cluster.yaml", address, IDLE_TIMEOUT_MIN, WORKER)
        yield start_head(config, temp_dir, port, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}), config
    finally:
        ray.shutdown()
        stop_cluster(temp_dir)
        monkeypatch.undo()
        reset_auth_state()
        shutil.rmtree(temp_dir, ignore_errors=True)


class NodeWatch(threading.Thread):
    """Once the sweep's driver is connected, notes when worker nodes are first alive and how many."""

    def __init__(self):
        super().__init__(daemon=True)
        self.first_up, self.most, self.stop = None, 0, threading.Event()

    def run(self):
        while not self.stop.wait(0.5):
            if ray.is_initialized():
                alive = len(alive_workers())
                self.most = max(self.most, alive)
                if alive and self.first_up is None:
                    self.first_up = time.time()


def alive_workers() -> list[str]:
    return [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeID"] != HEAD_NODE_ID]


def test_gpu_workers_scale_from_zero_and_back(tmp_path, autoscaling_cluster, tiny_dataset_tar, capsys):
    address, config = autoscaling_cluster
    worker_type = next(n for n in config["available_node_types"] if n != "ray.head.default")
    assert config["available_node_types"][worker_type]["min_workers"] == 0  # cluster.yaml: from zero
    spec = tiny_spec(tmp_path, tiny_dataset_tar, name="autoscale", concurrency=2,
                     resources={"cpus": 1, "gpus": 0.25}, tasks={"real": [0], "random": [0]},
                     protocol={"arch": "mlp", "width": 0.125, "epochs": 2, "batch_size": 64, "holdout": 60,
                               "compile": "off"})
    watch = NodeWatch()
    watch.start()
    requested = time.time()
    code = main(["sweep", str(spec), "--address", address])
    done = time.time()
    watch.stop.set()
    watch.join()
    # Idle workers go away after the idle timeout (plus the autoscaler's update interval).
    deadline = done + IDLE_TIMEOUT_MIN * 60 + 45
    while alive_workers() and time.time() < deadline:
        time.sleep(0.5)
    down = time.time()
    trial_actors = [a for a in ray._private.state.actors().values()
                    if a["ActorClassName"].endswith("ResourceTrainable")]  # Tune's wrapper of TrialActor
    started = min((a["StartTime"] / 1000 for a in trial_actors), default=requested)
    up = f"{watch.first_up - requested:.1f} s" if watch.first_up else "never"
    with capsys.disabled():
        print(f"\nautoscaler timeline: request 0 s, first worker up {up} ({watch.most} at most), first trial "
              f"started {started - requested:.1f} s, trials done {done - requested:.1f} s, all workers down "
              f"{down - requested:.1f} s (idle timeout {IDLE_TIMEOUT_MIN * 60:.0f} s)")
    assert not alive_workers(), "workers still up after the idle timeout"

    out = capsys.readouterr().out
    assert code == 0, out

    # Every trial ran in an actor on a worker node (the head has no CPUs for them), none failed.
    assert trial_actors
    assert all(a["Address"]["NodeID"] not in (HEAD_NODE_ID, "") for a in trial_actors), trial_actors
    assert watch.first_up is not None and watch.most >= 1
    assert out.count("has no CUDA") == 1, out  # the trials asked for a GPU: trained on the CPU, said once
    assert "[failed]" not in out

    loaded = load_spec(spec)
    sweep_dir = Path(loaded.sweep_dir)
    keys = collections.Counter(r["key"] for r in Record(sweep_dir).rows())
    assert len(keys) == 2 and set(keys.values()) == {1}
    parent_id = json.loads((sweep_dir / "mlflow.json").read_text())["parent_run_id"]
    client = MlflowClient(tracking_uri=loaded.tracking.uri)
    experiment = client.get_experiment_by_name(loaded.experiment)
    children = client.search_runs([experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    names = collections.Counter(r.data.tags["taskdisc.run"] for r in children)
    assert len(names) == 2 and set(names.values()) == {1}
    assert all(r.info.status == "FINISHED" for r in children)
