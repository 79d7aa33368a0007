"""MLflow as a log, not a single point of failure: real stores made unreachable, locked, or left
mid-write by a killed driver; the record heals; one driver per sweep folder."""
from __future__ import annotations

import subprocess
import sys

import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.specs.io import SpecError
from orchestrator.tracking.mlflow_runs import KEY_TAG
from orchestrator.tracking.record import Record
from orchestrator.tracking.sweep_lock import sweep_lock
from orchestrator.tracking.sweep_log import PARENT, SweepLog
from orchestrator.tracking.writer import writing_beside
from sweep_helpers import REPO, child_runs, tiny_spec


def open_log(sweep_dir, uri, **kw) -> SweepLog:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "spec.yaml").write_text("name: s\n")
    return SweepLog(sweep_dir, uri, "s", "s", {"protocol.epochs": 3}, sweep_dir / "spec.yaml", **kw)


def trial(log: SweepLog, key: str, recorded: list) -> None:
    log.start(key, f"s__{key}", {"seed": 0})
    for epoch in (1, 2):
        log.metrics(key, {"train/loss_0": 1.0 / epoch}, step=epoch)
    log.finish_trial(key, {"eval/agreement": 0.75}, 2, [], record=lambda: recorded.append(key), inputs=INPUTS)


INPUTS = [{"name": "real-0", "digest": "0123abcd", "source": "cifar10: real task 0"}]


def assert_one_finished_run_per_trial(uri: str, keys: list[str]) -> None:
    parents, children = child_runs(uri, "s")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.data.tags[KEY_TAG] for r in children) == sorted(keys)
    client = MlflowClient(tracking_uri=uri)
    for run in children:
        assert run.info.status == "FINISHED" and run.data.metrics["eval/agreement"] == 0.75
        assert run.data.params["seed"] == "0"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss_0")] == [1, 2]
        assert [(i.dataset.name, i.dataset.digest) for i in run.inputs.dataset_inputs] == [("real-0", "0123abcd")]


def test_unreachable_store_keeps_every_write_until_sync(tmp_path, tiny_dataset_tar, capsys):
    blocker = tmp_path / "store"
    blocker.write_text("a file where the store's folder should be")
    uri = f"sqlite:///{blocker}/mlflow.db"
    spec = tiny_spec(tmp_path, tiny_dataset_tar, name="s", **{"tracking.uri": uri})
    sweep_dir = tmp_path / "runs" / "s"
    with pytest.warns(UserWarning, match="did not answer"):
        log = open_log(sweep_dir, uri, backoff_s=(0.01,), down_s=0.0)
        recorded = []
        for key in ("a", "b"):
            trial(log, key, recorded)
    log.metrics(PARENT, {"sweep/mean": 0.75}, step=0)
    log.finish(PARENT)
    assert recorded == ["a", "b"] and log.pending() == [PARENT, "a", "b"]
    (sweep_dir / "spec.yaml").write_text(spec.read_text())

    assert main(["sync", str(sweep_dir)]) == 1  # still unreachable: says so, keeps everything
    assert "still does not answer" in capsys.readouterr().out and len(log.pending()) == 3
    blocker.unlink()
    blocker.mkdir()
    assert main(["sync", str(sweep_dir)]) == 0
    assert_one_finished_run_per_trial(uri, ["a", "b"])
    assert not (sweep_dir / "mlflow-outbox").exists()


def test_driver_killed_between_record_and_mlflow_loses_nothing(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep_dir = tmp_path / "runs" / "s"
    log = open_log(sweep_dir, uri)
    recorded = []

    def record_then_die():
        recorded.append("a")
        raise KeyboardInterrupt  # the driver dies right after the record row is written

    log.start("a", "s__a", {"seed": 0})
    log.metrics("a", {"train/loss_0": 1.0}, step=1)
    log.metrics("a", {"train/loss_0": 0.5}, step=2)
    with pytest.raises(KeyboardInterrupt):
        log.finish_trial("a", {"eval/agreement": 0.75}, 2, [], record=record_then_die, inputs=INPUTS)
    log.start("b", "s__b", {"seed": 0})  # a trial the dead driver had started: it reruns
    assert recorded == ["a"] and log.pending() == ["a"]

    rerun = open_log(sweep_dir, uri)  # the next driver replays what waited
    rerun.finish(PARENT)
    trial(rerun, "b", recorded)
    assert_one_finished_run_per_trial(uri, ["a", "b"])


def test_unreadable_record_file_is_set_aside_and_its_trial_counts_as_not_done(tmp_path, capsys):
    record = Record(tmp_path)
    row = {"group": "real", "index": 0, "seed": 0, "protocol_hash": "p", "run_name": "s__real-0__seed0", "agreement": 0.5,
           "holdout_acc_0": 0.9, "holdout_acc_1": 0.9}
    record.add("a", row)
    record.add("b", {**row, "index": 1})
    (record.dir / "b.parquet").write_bytes((record.dir / "b.parquet").read_bytes()[:40])  # truncated on disk
    with pytest.warns(UserWarning, match="b.parquet is unreadable"):
        assert record.done_keys() == {"a"}
    assert [p.name.split(".")[0] for p in record.aside_dir.iterdir()] == ["b"]
    record.add("b", {**row, "index": 1})  # the rerun's row
    assert sorted(r["key"] for r in Record(tmp_path).rows()) == ["a", "b"]

    (record.dir / "a.parquet").write_text("garbage")
    with pytest.warns(UserWarning):
        assert main(["results", str(tmp_path)]) == 0
    assert "1 unreadable record files were moved" in capsys.readouterr().out
    assert pq.read_table(record.dir / "b.parquet").num_rows == 1


def test_one_driver_per_sweep_folder_and_a_killed_one_frees_it(tmp_path, tiny_dataset_tar, capsys):
    spec = tiny_spec(tmp_path, tiny_dataset_tar, name="s")
    with sweep_lock(tmp_path / "runs" / "s"):
        assert main(["sweep", str(spec)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "runs/s is in use by taskdisc sweep pid" in err[0]
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from orchestrator.tracking.sweep_lock import sweep_lock\n"
                               f"with sweep_lock(Path({str(tmp_path / 'x')!r})):\n"
                               "    print('held', flush=True); time.sleep(60)"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(SpecError, match=f"pid {holder.pid}"):
        with sweep_lock(tmp_path / "x"):
            pass
    holder.kill()
    holder.wait()
    with sweep_lock(tmp_path / "x"):  # SIGKILL left no stale lock behind
        pass


def test_two_drivers_creating_one_fresh_store_at_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = ("import sys; from orchestrator.tracking.mlflow_runs import Tracker; "
            "t = Tracker(sys.argv[1], sys.argv[2]); print(t.experiment_id)")
    drivers = [subprocess.Popen([sys.executable, "-c", code, uri, name], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    outs = [d.communicate(timeout=120) for d in drivers]
    assert [d.returncode for d in drivers] == [0, 0], [err[-500:] for _, err in outs]
    client = MlflowClient(tracking_uri=uri)
    assert {client.get_experiment_by_name(n).experiment_id for n in ("a", "b")} == {o.strip() for o, _ in outs}


def test_an_outbox_line_cut_short_by_a_full_disk_is_dropped_not_fatal(tmp_path):
    """A write that met a full disk leaves half a line. The next driver may append to the same file before
    any replay (MLflow not answering then, or the writer process applying as the sweep goes): its lines start
    a line of their own, and replay drops the half (its trial was not recorded: it reran), applying the rest."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep_dir = tmp_path / "runs" / "s"
    log = open_log(sweep_dir, uri)
    log.deferred = True  # as during a sweep: every write goes to the outbox
    log.start("a", "s__a", {"seed": 0})
    with open(sweep_dir / "mlflow-outbox" / "a.jsonl", "a") as f:
        f.write('{"op": "metrics", "batch": [[{"train/lo')  # the disk filled here
    rerun = open_log(sweep_dir, uri, replay=False)
    rerun.deferred = True
    recorded = []
    trial(rerun, "a", recorded)  # the trial's rerun appends to the same file
    open_log(sweep_dir, uri).finish(PARENT)  # replay
    assert recorded == ["a"] and not (sweep_dir / "mlflow-outbox").exists()
    assert_one_finished_run_per_trial(uri, ["a"])


def test_a_reader_leaves_the_file_a_writer_is_filling_alone(tmp_path):
    """`taskdisc results` (or a test polling the record) during a sweep: the writer's half-written temporary
    file is not the record's yet; taken for unreadable and moved, the writer's rename would fail under it."""
    record = Record(tmp_path)
    record.add("a", {"agreement": 0.5})
    filling = record.dir / ".tmp-abc123.parquet"
    filling.write_bytes(b"PAR1 half")
    assert Record(tmp_path).done_keys() == {"a"} and filling.exists()
    assert not record.aside_dir.exists()


def test_record_compacts_into_segments_and_reads_each_key_once(tmp_path, monkeypatch):
    monkeypatch.setattr("orchestrator.tracking.record.COMPACT_AT", 3)
    record = Record(tmp_path)
    for i in range(7):
        record.add(f"k{i}", {"index": i, "agreement": 0.5 + i / 100})
    assert len(list(record.segments_dir.iterdir())) == 2 and len(list(record.dir.glob("*.parquet"))) == 1
    assert [r["key"] for r in record.rows()] == [f"k{i}" for i in range(7)]
    # A driver killed between writing a segment and removing its loose files: each key is read once.
    (record.dir / "k0.parquet").write_bytes((record.segments_dir / "000000.parquet").read_bytes())
    assert sorted(r["key"] for r in Record(tmp_path).rows()) == [f"k{i}" for i in range(7)]
    record.compact()
    assert list(record.dir.glob("*.parquet")) == [] and Record(tmp_path).done_keys() == {f"k{i}" for i in range(7)}
    # An unreadable segment is set aside: its trials count as not done and run again.
    (record.segments_dir / "000001.parquet").write_text("garbage")  # k3, k4, k5
    with pytest.warns(UserWarning, match="000001.parquet is unreadable"):
        assert Record(tmp_path).done_keys() == {"k0", "k1", "k2", "k6"}


def driver_and_writer(tmp_path):
    """A sweep's log as during a sweep: the driver's half (appends only) and the writer process's half."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep_dir = tmp_path / "runs" / "s"
    driver = open_log(sweep_dir, uri)
    driver.deferred = True
    return uri, sweep_dir, driver, open_log(sweep_dir, uri, replay=False)


def test_writer_process_side_applies_complete_lines_as_the_driver_appends(tmp_path):
    """The two halves of a sweep's log: the driver appends (`deferred`), a writer applies what is complete."""
    uri, sweep_dir, driver, writer = driver_and_writer(tmp_path)
    driver.start("a", "s__a", {"seed": 0})
    driver.finish(PARENT)
    for epoch in (1, 2):
        driver.metrics("a", {"train/loss_0": 1.0 / epoch}, step=epoch)
    path = sweep_dir / "mlflow-outbox" / "a.jsonl"
    with open(path, "a") as f:  # half a line, as a driver caught mid-write leaves it
        f.write('{"op": "metr')
    writer.advance(final=False)
    (run,) = child_runs(uri, "s")[1]
    assert run.info.status == "RUNNING" and path.is_file()  # started; the metrics wait in the driver's memory
    with open(path, "a") as f:
        f.write('ics", "batch": []}\n')
    recorded = []
    driver.finish_trial("a", {"eval/agreement": 0.75}, 2, [], record=lambda: recorded.append("a"), inputs=INPUTS)
    assert recorded == ["a"] and path.is_file()  # the record waits for nobody; MLflow's copy is on disk
    writer.advance(final=False)
    assert not path.is_file()  # applied up to the trial's finish, so gone
    writer.advance(final=True)
    assert_one_finished_run_per_trial(uri, ["a"])


def test_a_writer_killed_mid_trial_leaves_one_run_per_trial(tmp_path):
    uri, sweep_dir, driver, writer = driver_and_writer(tmp_path)
    driver.start("a", "s__a", {"seed": 0})
    driver.metrics("a", {"train/loss_0": 1.0}, step=1)
    driver.finish("a")  # an ended trial ...
    writer.advance(final=False)  # ... whose writes the writer applies up to the finish, then dies (no final pass)
    driver.start("b", "s__b", {"seed": 0})
    driver.finish(PARENT)
    writer.advance(final=False)  # the run of b is made; its outbox file still has a start with no run id
    del writer
    assert [r.data.tags[KEY_TAG] for r in child_runs(uri, "s")[1]].count("b") == 1
    recorded = []
    rerun = open_log(sweep_dir, uri)  # the next driver replays b's file: its half-made run is replaced
    trial(rerun, "b", recorded)
    parents, children = child_runs(uri, "s")
    assert sorted(r.data.tags[KEY_TAG] for r in children) == ["a", "b"]
    b = next(r for r in children if r.data.tags[KEY_TAG] == "b")
    assert b.info.status == "FINISHED" and b.data.metrics["eval/agreement"] == 0.75


@pytest.mark.parametrize("command", [None, ["/no/such/python"], [sys.executable, "-c", "raise SystemExit(3)"]],
                         ids=["writer", "no-process", "writer-dies"])
def test_what_a_sweep_logs_beside_its_writer_process_reaches_mlflow(tmp_path, monkeypatch, capsys, command):
    if command:
        monkeypatch.setattr("orchestrator.tracking.writer.COMMAND", command)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    log = open_log(tmp_path / "runs" / "s", uri)
    recorded = []
    with writing_beside(log):
        for key in ("a", "b"):
            trial(log, key, recorded)
    log.finish(PARENT)
    assert log.flush() == 0 and recorded == ["a", "b"]
    assert_one_finished_run_per_trial(uri, ["a", "b"])
    assert ("notice" in capsys.readouterr().out) == bool(command)  # a missing or dead writer is said, not fatal
