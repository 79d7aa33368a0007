"""Faults a user meets end in at most three lines on stderr (what happened, what was kept, the command that
resumes), the traceback in the sweep's log, and a rerun that finishes only what is missing: nothing lost or
duplicated in the record or in MLflow. Each case runs through the CLI: signals and a full disk on a real
driver process, YAML that would change a spec's meaning, a trial that raises."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.tracking.record import Record
from sweep_helpers import REPO, child_runs, tiny_spec

TWELVE = {"tasks": {"random": "0-11"}, "protocol.epochs": 30}


def start_driver(spec_path: Path, cwd: Path, ray_address: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY_ADDRESS=ray_address)
    return subprocess.Popen([sys.executable, "-m", "orchestrator", "sweep", spec_path.name], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_records(record: Record, n: int, driver: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while len(record.done_keys()) < n and driver.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert driver.poll() is None, driver.communicate()
    assert len(record.done_keys()) >= n


def check_three_lines(stderr: str, spec_name: str, what: str, sweep_dir: Path, disk_full: bool = False) -> Path:
    """The fault's lines: what happened with the log named, what was kept, the command that resumes; returns the
    log's path (in the sweep's folder; or a temporary file where a full disk took even the log's room)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 3, stderr
    assert lines[0].startswith(f"taskdisc: sweep {Path(spec_name).stem} stopped") and what in lines[0], lines
    assert lines[1].startswith("kept: ") and f"trials recorded in {sweep_dir}" in lines[1], lines
    assert lines[2] == f"resume: taskdisc sweep {spec_name}", lines
    log = Path(lines[0].rsplit("(details: ", 1)[1].rstrip(")"))
    assert log.is_file() and (log.parent.parent == sweep_dir or disk_full and log.name.startswith("taskdisc-fault-"))
    return log


def check_rerun(root: Path, name: str, done_before: set, finished: dict, out: str, total: int = 12) -> None:
    """The rerun ran only the trials not recorded; the record and MLflow (both under `root`) then hold each
    trial once."""
    assert f"{len(done_before)} already recorded, {total - len(done_before)} to run" in out
    rows = Record(root / "runs" / name).rows()
    assert {r["key"]: r["finished_at"] for r in rows if r["key"] in done_before} == finished  # not rewritten
    assert len(rows) == total and len({r["key"] for r in rows}) == total
    parents, children = child_runs(f"sqlite:///{root / 'mlflow.db'}", name)
    assert len(parents) == 1
    assert len(children) == total and len({r.data.tags["taskdisc.key"] for r in children}) == total  # one a trial
    assert all(r.info.status == "FINISHED" and "eval/agreement" in r.data.metrics for r in children)
    assert not (root / "runs" / name / "mlflow-outbox").exists()


def test_signals_mid_sweep_say_what_was_kept_and_the_rerun_finishes_the_rest(tmp_path, tiny_dataset_tar,
                                                                            ray_address, capsys):
    """Ctrl-C, then SIGTERM on the resumed sweep, then SIGHUP (its terminal closed), then the same command once
    more: it finishes the rest."""
    spec_path = tiny_spec(tmp_path, tiny_dataset_tar, name="sig", **{**TWELVE, "tasks": {"random": "0-15"}})
    sweep_dir = tmp_path / "runs" / "sig"
    record = Record(sweep_dir)
    for signum, code, what in ((signal.SIGINT, 130, "by SIGINT (Ctrl-C)"), (signal.SIGTERM, 143, "by SIGTERM"),
                               (signal.SIGHUP, 129, "by SIGHUP (terminal closed)")):
        before = len(record.done_keys())
        driver = start_driver(spec_path, tmp_path, ray_address)
        wait_for_records(record, before + 2, driver)
        driver.send_signal(signum)
        out, err = driver.communicate(timeout=120)
        assert driver.returncode == code, (out, err)
        log = check_three_lines(err, "sig.yaml", what, sweep_dir)
        kept = len(record.done_keys())
        assert before + 2 <= kept < 16 and f"kept: {kept} of 16 trials" in err
        assert f"{before} already recorded" in out
        assert "Stopped" in log.read_text()  # the traceback, for whoever wants it
        assert "Tuner.restore" not in out + err  # Tune's own advice, which a taskdisc user cannot act on
    done_before = record.done_keys()
    finished = {r["key"]: r["finished_at"] for r in record.rows()}
    assert main(["sweep", str(spec_path), "--address", ray_address]) == 0
    check_rerun(tmp_path, "sig", done_before, finished, capsys.readouterr().out, total=16)


@pytest.fixture
def small_disk(tmp_path):
    """A 160 MB filesystem of its own (tmpfs: memory only as used) at tmp_path/disk, unmounted after."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", str(disk)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); CI runs as root and can")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, leave: int) -> Path:
    """Write a ballast file that leaves about `leave` bytes free on `disk` (less if the sweep writes meanwhile)."""
    ballast = disk / "ballast"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    chunk = b"\0" * 2**20
    with open(ballast, "wb", buffering=0) as f:
        try:
            for _ in range(max(0, (free - leave) // len(chunk))):
                f.write(chunk)
        except OSError:  # the sweep's checkpoints took the rest first: full is what this wants
            pass
    return ballast


def test_a_full_disk_mid_sweep_is_one_message_and_the_rerun_after_freeing_space_finishes(
        tmp_path, small_disk, tiny_dataset_tar, ray_address, capsys):
    # runs/ and the MLflow store both on the small filesystem
    spec_path = tiny_spec(tmp_path, tiny_dataset_tar, name="full", **TWELVE,
                          output_dir=str(small_disk / "runs"), **{"tracking.uri": f"sqlite:///{small_disk}/mlflow.db"})
    sweep_dir = small_disk / "runs" / "full"
    record = Record(sweep_dir)
    driver = start_driver(spec_path, tmp_path, ray_address)
    wait_for_records(record, 2, driver)
    ballast = fill(small_disk, leave=2**20)
    out, err = driver.communicate(timeout=180)
    assert driver.returncode == 1, (out, err)
    log = check_three_lines(err, "full.yaml", f"no space left on {small_disk}", sweep_dir, disk_full=True)
    assert f"no space left on {small_disk}" in log.read_text()
    assert " MB free, the sweep needs about " in err and "Traceback" not in out + err
    done_before = record.done_keys()
    assert 2 <= len(done_before) < 12 and f"kept: {len(done_before)} of 12 trials" in err
    finished = {r["key"]: r["finished_at"] for r in record.rows()}

    ballast.unlink()  # space freed: the same command finishes the sweep
    assert main(["sweep", str(spec_path), "--address", ray_address]) == 0
    check_rerun(small_disk, "full", done_before, finished, capsys.readouterr().out)


def test_a_trial_that_raises_ends_in_three_lines_with_its_traceback_in_the_log(
        tmp_path, tiny_dataset_tar, ray_address, capsys, monkeypatch):
    from test_kinds import example_spec, readme_kind
    from orchestrator.kinds import register, unregister

    module = readme_kind(tmp_path)

    def step(self):
        raise RuntimeError("the worker's GPU fell off the bus")

    monkeypatch.setattr(module.BalanceRunner, "step", step)  # the test's own toy kind, not Ray or MLflow
    register(module.KIND)
    try:
        path, sweep_dir = example_spec(tmp_path, "balance", tiny_dataset_tar)
        assert main(["sweep", str(path), "--address", ray_address, "--set", "max_failures=0"]) == 1
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 3, captured.err
        assert lines[0].startswith("taskdisc: 2 trials of sweep example-balance did not finish (details: ")
        assert lines[1] == f"kept: 0 of 2 trials recorded in {sweep_dir}"
        assert lines[2] == f"resume: taskdisc sweep {path} --address {ray_address} --set max_failures=0"
        log = (sweep_dir / "logs" / "driver.log").read_text()
        assert log.count("RuntimeError: the worker's GPU fell off the bus") >= 2  # each trial's traceback
        assert "Traceback" not in captured.out + captured.err
    finally:
        unregister("balance")
        sys.modules.pop("balance_kind", None)
