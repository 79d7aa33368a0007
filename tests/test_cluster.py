"""A real multi-node Ray cluster on this machine (a head without CPUs and two 1-CPU worker nodes, Ray
token authentication on) runs an agreement sweep while one worker node dies: the killed
trial is retried on the other node, and every trial ends up exactly once in the record and exactly
once as an MLflow child run of the sweep."""
from __future__ import annotations

import collections
import contextlib
import json
import os
import secrets
import shutil
import signal
import tempfile
from pathlib import Path

import pytest
import ray
from mlflow.tracking import MlflowClient
from ray import tune
from ray._private import ray_constants

from autoscale_cluster import reset_auth_state
from orchestrator.launch import run_sweep
from orchestrator.kinds import load_spec
from orchestrator.tracking.record import Record
from sweep_helpers import tiny_spec

pytestmark = [pytest.mark.slow, pytest.mark.own_ray]

EPOCHS = 30  # tiny data: enough steps that the trial on the killed node is still running
ROW_KEYS = {"key", "spec", "run_name", "group", "kind", "index", "source", "seed", "protocol_hash", "arch", "width",
            "protocol", "task", "agreement", "agreement_by_epoch", "balance", "epochs", "wall_s", "images_per_s", "finished_at",
            *(f"{part}_{i}" for part in ("train_acc", "holdout_acc", "test_acc") for i in range(2))}


@pytest.fixture
def cluster(monkeypatch):
    """Head (0 CPUs: driver and GCS only) + two 1-CPU worker nodes, all with token auth; torn down after."""
    from ray._common.utils import get_ray_address_file
    from ray.cluster_utils import Cluster
    if ray.is_initialized():
        pytest.fail("a Ray driver is already connected in this process: own_ray tests must run first (conftest.py)")
    # What `ray start --address` needs to join a token-auth head: RAY_AUTH_MODE=token and the same
    # token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token). The nodes inherit this env.
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    reset_auth_state()
    temp_dir = tempfile.mkdtemp(prefix="tdray-", dir="/tmp")  # short: Unix socket paths live under it
    # Ray's Cluster writes the head's address into Ray's default temp folder, which it does not create
    # (a fresh machine, or one whose /tmp/ray another test's Ray removed)
    Path(os.path.dirname(get_ray_address_file(None))).mkdir(parents=True, exist_ok=True)
    c = None
    try:
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "temp_dir": temp_dir,
                                                          "include_dashboard": False})
        for _ in range(2):
            c.add_node(num_cpus=1, temp_dir=temp_dir)
        c.wait_for_nodes()
        yield c
    finally:
        ray.shutdown()
        if c is not None:
            c.shutdown()
        monkeypatch.undo()
        reset_auth_state()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def _descendants(pid: int) -> list[int]:
    """The processes under `pid` (a raylet's workers and theirs), read from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = _parent_pid(int(entry.name))
            except (OSError, ValueError):  # ended while we looked
                pass
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


class KillNodeOnce(tune.Callback):
    """On the first trial result, kills (SIGKILL, no grace) the worker node whose raylet runs that
    trial's actor, as a lost machine dies: its workers with it. (`Cluster.remove_node` kills the node's
    own processes only; its workers, orphaned, went on serving the driver for seconds, finished the
    trial and took the next one.) Records the killed trial and the trials Tune restarted."""

    def __init__(self, cluster):
        self.cluster, self.killed, self.recovered = cluster, None, []

    def __getstate__(self) -> dict:  # Tune pickles its callbacks into the experiment state; a Cluster holds locks
        return {**self.__dict__, "cluster": None}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.killed is not None:
            return
        raylet = _parent_pid(result["pid"])
        for node in list(self.cluster.worker_nodes):
            if node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid == raylet:
                workers = _descendants(raylet)
                self.cluster.remove_node(node, allow_graceful=False)
                for pid in workers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.killed = (trial.trial_id, result["epoch"])
                return
        raise AssertionError(f"trial {trial} (pid {result['pid']}) runs on no worker node")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.recovered.append(trial.trial_id)


def test_sweep_survives_a_dead_worker_node(tmp_path, cluster, tiny_dataset_tar):
    shared = tmp_path / "shared"  # Tune's checkpoints: a folder every node reaches
    spec = load_spec(tiny_spec(
        tmp_path, tiny_dataset_tar, name="cluster", max_failures=2, storage=str(shared), concurrency=2, checkpoint_every=10,
        protocol={"arch": "mlp", "width": 0.125, "epochs": EPOCHS, "batch_size": 64, "holdout": 60,
                  "compile": "off"},
        tasks={"real": [0, 1], "random": [0, 1]}))
    trials = spec.trials()
    assert spec.storage == str(shared) and len(trials) == 4
    killer = KillNodeOnce(cluster)

    [(_, rows)] = run_sweep(spec, address=cluster.address, callbacks=[killer])

    assert killer.killed is not None and len(cluster.worker_nodes) == 1
    assert killer.killed[0] in killer.recovered  # the killed trial ran again, on the other node
    sweep_dir = Path(spec.sweep_dir)
    record = Record(sweep_dir).rows()
    counts = collections.Counter(r["key"] for r in record)
    assert counts == {t.key: 1 for t in trials}
    assert sorted(r["key"] for r in rows) == sorted(counts)
    for row in record:
        assert ROW_KEYS <= set(row), ROW_KEYS - set(row)
        assert row["epochs"] == EPOCHS and 0.0 <= row["agreement"] <= 1.0 and row["arch"] == "mlp"

    parent_id = json.loads((sweep_dir / "mlflow.json").read_text())["parent_run_id"]
    client = MlflowClient(tracking_uri=spec.tracking.uri)
    experiment = client.get_experiment_by_name(spec.experiment)
    children = client.search_runs([experiment.experiment_id], max_results=1000,
                                  filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    names = collections.Counter(r.data.tags["taskdisc.run"] for r in children)
    assert names == {t.run_name: 1 for t in trials}, [(r.info.run_name, r.info.status) for r in children]
    assert all(r.info.status == "FINISHED" for r in children)
    assert client.get_run(parent_id).info.status == "FINISHED"
