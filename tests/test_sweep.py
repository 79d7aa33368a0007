"""End-to-end sweeps with the real Ray (session instance, 2 CPUs) and real MLflow (SQLite in tmp)."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from mlflow.tracking import MlflowClient
from ray import tune

from orchestrator.cli import main
from orchestrator.tracking.record import Record
from orchestrator.tracking.sweep_lock import LOCK_FILE
from orchestrator.kinds import load_spec
from orchestrator.trial_actor import INPUTS_PREFIX, materialize, remove_orphans, trial_device
from orchestrator.kinds.agreement.trial import AgreementAdapter
from orchestrator.launch import run_sweep
from sweep_helpers import REPO, child_runs, cli, tiny_spec
from trainables.discovery import table_of_test_images, write_table


def test_cli_sweep_tracks_every_trial(tmp_path, tiny_dataset_tar, ray_address, capsys):
    spec_path = tiny_spec(tmp_path, tiny_dataset_tar)
    inputs_before = set(Path(tempfile.gettempdir()).glob(f"{INPUTS_PREFIX}*"))
    out = cli("sweep", str(spec_path), cwd=tmp_path, address=ray_address)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("] tiny__") == 6  # one progress line per finished trial
    assert "real" in out.stdout and "mean AS" in out.stdout

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parents, children = child_runs(uri, "tiny")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    names = sorted(r.info.run_name for r in children)  # short for the runs table; the full name in a tag
    assert names == sorted([f"real-{i} s0" for i in range(4)] + [f"random-{i} s0" for i in range(2)])
    assert sorted(r.data.tags["taskdisc.run"] for r in children) == sorted(
        [f"tiny__real-{i}__seed0" for i in range(4)] + [f"tiny__random-{i}__seed0" for i in range(2)])
    client = MlflowClient(tracking_uri=uri)
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert 0.0 <= run.data.metrics["eval/agreement"] <= 1.0
        assert {"eval/acc_0", "eval/acc_1", "test/acc_0", "train/acc_0", "train/loss_1"} <= set(run.data.metrics)
        assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss_0")] == [1, 2, 3]
        assert run.data.params["protocol.arch"] == "mlp"
        tags = run.data.tags  # for the UI's filters and group-by, e.g. tags.task_kind = 'real'
        assert tags["task_kind"] == tags["task_set"] and tags["arch"] == "mlp" and tags["seed"] == "0"
        assert run.info.run_name == f"{tags['task_kind']}-{tags['task_index']} s0"
        (used,) = run.inputs.dataset_inputs  # the labels, named by task, identified by their digest
        assert used.dataset.name == run.info.run_name.split()[0] and len(used.dataset.digest) == 16
    assert client.get_experiment_by_name("tiny").tags["mlflow.experimentKind"] == "custom_model_development"
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"spec.yaml", "results.parquet", "agreement_table.csv", "as_by_task_set.png", "as_by_epoch.png",
            "as_vs_test_acc.png"} <= artifacts
    digests = {c.info.run_name.split()[0]: c.inputs.dataset_inputs[0].dataset.digest for c in children}
    assert len(set(digests.values())) == 6  # six different labellings
    assert parents[0].data.params["protocol.epochs"] == "3"
    assert {"tasks/task_real_top.png", "tasks/task_real_bottom.png", "tasks/task_random_top.png"} <= {
        a.path for a in client.list_artifacts(parents[0].info.run_id, "tasks")}

    table = pq.read_table(tmp_path / "runs" / "tiny" / "results.parquet").to_pylist()
    assert len(table) == 6 and len({r["key"] for r in table}) == 6
    assert all(len(r["agreement_by_epoch"]) == 3 and r["agreement_by_epoch"][-1] == r["agreement"] for r in table)
    csv_head = (tmp_path / "runs" / "tiny" / "agreement_table.csv").read_text().splitlines()[0]
    assert csv_head == "task_idx,task,as,seed,protocol"
    assert not list((tmp_path / "runs" / "tiny" / "tune").rglob("state.pt"))  # recorded: checkpoints dropped

    assert set(Path(tempfile.gettempdir()).glob(f"{INPUTS_PREFIX}*")) <= inputs_before  # actors cleaned up

    assert main(["sweep", str(spec_path)]) == 0  # nothing left to run (in-process: the same CLI, no start-up)
    assert "6 already recorded, 0 to run" in capsys.readouterr().out
    assert len(child_runs(uri, "tiny")[1]) == 6

    assert main(["results", str(tmp_path / "runs" / "tiny")]) == 0
    out = capsys.readouterr().out
    assert "random" in out and "top" in out

    # Another protocol in the same folder (`--set`): its own parent run, results of that spec only.
    assert main(["sweep", str(spec_path), "--set", "protocol.epochs=2", "--set", "tasks.random=[0]"]) == 0
    assert "5 trials, 0 already recorded, 5 to run" in capsys.readouterr().out
    parents, children = child_runs(uri, "tiny")
    assert sorted(p.data.params["protocol.epochs"] for p in parents) == ["2", "3"]
    for parent in parents:
        mine = [c for c in children if c.data.tags["mlflow.parentRunId"] == parent.info.run_id]
        assert len(mine) == (5 if parent.data.params["protocol.epochs"] == "2" else 6)
        assert len({c.info.run_name for c in mine}) == len(mine)
    table = pq.read_table(tmp_path / "runs" / "tiny" / "results.parquet").to_pylist()
    assert len(table) == 5 and {r["epochs"] for r in table} == {2}
    assert main(["results", str(tmp_path / "runs" / "tiny")]) == 0  # the folder's latest spec, and says so
    assert "(6 recorded trials of an earlier spec" in capsys.readouterr().out


class KillWorkerOnce(tune.Callback):
    """Kills the trial's worker process after its second epoch, once; records what it saw."""

    def __init__(self):
        self.killed, self.epochs = False, []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.epochs.append(result["epoch"])
        if not self.killed and result["epoch"] == 2:
            self.killed = True
            os.kill(result["pid"], signal.SIGKILL)


class LockStoreOnce(tune.Callback):
    """Holds an exclusive lock on the SQLite store for `seconds` from the first trial result on."""

    def __init__(self, db, seconds: float):
        self.db, self.seconds, self.thread = db, seconds, None

    def __getstate__(self) -> dict:  # Tune snapshots its callbacks; a thread does not pickle
        return {**self.__dict__, "thread": None}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.thread is None:
            ready = threading.Event()
            self.thread = threading.Thread(target=self._hold, args=(ready,))
            self.thread.start()
            ready.wait()

    def _hold(self, ready):
        con = sqlite3.connect(self.db, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        ready.set()
        time.sleep(self.seconds)
        con.execute("COMMIT")
        con.close()


def test_trial_resumes_from_checkpoint_after_worker_death(tmp_path, tiny_dataset_tar, ray_address):
    """Two faults in one sweep: the trial's worker is killed, and the MLflow store is locked for
    longer than SQLite waits; neither aborts the sweep or loses anything."""
    common = {"tasks": {"real": [5]}, "protocol.epochs": 20}
    killer, lock = KillWorkerOnce(), LockStoreOnce(tmp_path / "a" / "mlflow.db", seconds=21)
    spec = load_spec(tiny_spec(tmp_path / "a", tiny_dataset_tar, name="killed", **common))
    [(_, rows)] = run_sweep(spec, callbacks=[killer, lock])
    lock.thread.join()
    _, children = child_runs(spec.tracking.uri, "killed")
    assert len(children) == 1 and children[0].info.status == "FINISHED" and "eval/agreement" in children[0].data.metrics
    assert not (tmp_path / "a" / "runs" / "killed" / "mlflow-outbox").exists()
    assert killer.killed
    # After the restart the trial continues from its last checkpoint (epoch 1 or 2, depending on
    # whether epoch 2's was written before the kill), not from scratch.
    restart = killer.epochs.index(2) + 1
    assert killer.epochs[restart] in (2, 3) and 1 not in killer.epochs[restart:]
    assert len(rows) == 1 and rows[0]["epochs"] == 20

    # Deterministic training: the interrupted trial equals an uninterrupted one.
    [(_, clean)] = run_sweep(load_spec(tiny_spec(tmp_path / "b", tiny_dataset_tar, name="clean", **common)))
    for field in ("agreement", "train_acc_0", "holdout_acc_1", "test_acc_0"):
        assert rows[0][field] == clean[0][field], field


class TrialsSeen(tune.Callback):
    """Which actors ran trials, the iterations checkpoints were taken at, and how many trials Tune still
    listed at the sweep's end."""

    def __init__(self):
        self.pids, self.checkpoints, self.listed_at_end = set(), [], None

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.pids.add(result["pid"])

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self.checkpoints.append(trial.last_result["training_iteration"])

    def on_experiment_end(self, trials, **info):
        self.listed_at_end = len(trials)


def test_short_trials_fill_the_actor_pool_and_leave_no_final_checkpoint(tmp_path, tiny_dataset_tar, ray_address):
    seen = TrialsSeen()
    spec = load_spec(tiny_spec(tmp_path, tiny_dataset_tar, name="pool", **{"tasks": {"random": "0-7"},
                                                                          "protocol.epochs": 2}))
    assert len(run_sweep(spec, callbacks=[seen])[0][1]) == 8
    assert len(seen.pids) == 2  # both slots in use, though a trial is shorter than an actor's start
    assert seen.checkpoints == [1] * 8  # every checkpoint_every=1 epochs, but none at a trial's end
    # Tune forgot the ended trials (the record and MLflow hold them) but the last: from its list and
    # from its experiment snapshots
    assert seen.listed_at_end == 1
    snapshot = max((tmp_path / "runs" / "pool" / "tune").glob("*/experiment_state-*.json"))
    assert len(json.loads(snapshot.read_text())["trial_data"]) == 1
    _, children = child_runs(spec.tracking.uri, "pool")  # written by the writer process
    assert len(children) == 8 and {r.info.status for r in children} == {"FINISHED"}


def test_killed_driver_resumes_without_loss_or_duplicates(tmp_path, tiny_dataset_tar, ray_address, capsys):
    spec_path = tiny_spec(tmp_path, tiny_dataset_tar, name="resume", **{"protocol.epochs": 15,
                          "tasks": {"random": "0-7"}})
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY_ADDRESS=ray_address)
    driver = subprocess.Popen([sys.executable, "-m", "orchestrator", "sweep", str(spec_path)], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    record, lock = Record(tmp_path / "runs" / "resume"), tmp_path / "runs" / "resume" / LOCK_FILE
    deadline = time.time() + 240
    while not (lock.exists() and f"pid {driver.pid}" in lock.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    assert main(["sweep", str(spec_path)]) == 2  # one folder, one driver (asked while the first one starts)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pid {driver.pid}" in err[0], err
    while len(record.done_keys()) < 2 and driver.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(driver.pid, signal.SIGKILL)  # the lock goes with it: the rerun below takes the folder
    driver.wait()
    done_before = record.done_keys()
    assert 2 <= len(done_before) < 8, "the driver should die mid-sweep"
    finished = {r["key"]: r["finished_at"] for r in record.rows()}

    assert main(["sweep", str(spec_path)]) == 0
    out = capsys.readouterr().out
    assert f"{len(done_before)} already recorded, {8 - len(done_before)} to run" in out
    assert out.count("] resume__") == 8 - len(done_before)  # only the rest ran
    rows = record.rows()
    assert {r["key"]: r["finished_at"] for r in rows if r["key"] in done_before} == finished  # not rewritten
    assert len(rows) == 8 and len({r["key"] for r in rows}) == 8

    parents, children = child_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "resume")
    assert len(parents) == 1  # the resumed sweep reopened its parent run
    assert len(children) == 8 and len({r.info.run_name for r in children}) == 8  # one run per trial
    assert all(r.info.status == "FINISHED" and "eval/agreement" in r.data.metrics for r in children)
    assert not (tmp_path / "runs" / "resume" / "mlflow-outbox").exists()


class BreakDatasetAtStart(tune.Callback):
    """The dataset goes bad after the driver checked it (a disk fault, a copy replaced); counts the
    retries and errors Tune sees."""

    def __init__(self, path):
        self.path, self.recovered, self.errors = path, 0, 0

    def setup(self, **info):
        data = self.path.read_bytes()
        self.path.write_bytes(data[: len(data) // 2])

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.recovered += 1

    def on_trial_error(self, iteration, trials, trial, **info):
        self.errors += 1


def test_bad_input_a_trial_meets_is_reported_once_not_retried(tmp_path, tiny_dataset_tar, ray_address, capsys):
    data = tmp_path / "copy.tar.gz"
    data.write_bytes(tiny_dataset_tar.read_bytes())
    spec = load_spec(tiny_spec(tmp_path, data, name="broken", tasks={"real": [0, 1]}, max_failures=2))
    breaker = BreakDatasetAtStart(data)
    assert run_sweep(spec, callbacks=[breaker]) == [(spec, [])]
    out = capsys.readouterr().out
    assert out.count("(bad input: not retried)") == 2 and "not a readable tarball" in out
    assert breaker.recovered == 0 and breaker.errors == 0
    assert not Record(spec.sweep_dir).done_keys()
    parents, children = child_runs(spec.tracking.uri, "broken")
    assert len(children) == 2 and all(r.info.status == "FAILED" for r in children)
    assert parents[0].info.status == "FAILED"


@pytest.mark.parametrize("override, message", [  # the entry point; every other case: test_bad_input.py
    ("protocol.epochs=0", "protocol.epochs=0 is invalid"),
])
def test_bad_spec_exits_2_before_anything_is_written(tmp_path, tiny_dataset_tar, override, message):
    spec_path = tiny_spec(tmp_path, tiny_dataset_tar)
    out = cli("sweep", str(spec_path), "--set", override, cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and str(spec_path) in lines[0]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "runs").exists()


def test_input_folders_of_dead_actors_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan, live = tmp_path / f"{INPUTS_PREFIX}{dead.stdout.strip()}-x", tmp_path / f"{INPUTS_PREFIX}{os.getpid()}-y"
    for folder in (orphan, live):
        (folder / "t").mkdir(parents=True)
    remove_orphans(tmp_path)
    assert not orphan.exists() and live.exists()


def test_input_files_reach_actors_through_ray_with_their_siblings(tmp_path):
    table = write_table(torch.zeros(5, 2, dtype=torch.long), tmp_path / "d" / "tasks.parquet")
    write_table(torch.ones(3, 2, dtype=torch.long), table_of_test_images(table))
    inputs = AgreementAdapter().inputs({"source": str(table)})
    assert inputs == [str(table), str(table_of_test_images(table))]
    local = materialize({p: open(p, "rb").read() for p in inputs}, tmp_path / "actor")
    copy = local[str(table)]
    assert copy != str(table) and str(table_of_test_images(copy)) == local[inputs[1]]
    assert open(copy, "rb").read() == table.read_bytes()


def test_a_trial_given_a_gpu_where_cuda_is_missing_trains_on_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device, notice = trial_device("cuda")
    assert device == "cpu" and "has no CUDA" in notice and "\n" not in notice
    assert trial_device("cpu") == ("cpu", None)
