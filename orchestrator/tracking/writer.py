"""The MLflow writer process of a running sweep: applies the ops the driver appends to the outbox.

The driver (Tune's loop, the callbacks, the record) and MLflow's store each cost tens of ms per
trial; in one process they take turns, so a short trial's actor waits for both. Here the driver
only appends lines to `<sweep>/mlflow-outbox/` and this process writes them to MLflow as they
come. Its stdin is its lifeline: when the driver closes it (the sweep ended) or dies (the pipe
breaks), the writer applies what is left and exits; what MLflow does not take stays in the outbox
for the next sweep or `taskdisc sync`, as before.

    python -m orchestrator.tracking.writer   # one JSON line on stdin: the SweepLog's arguments
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

POLL_S = 0.2  # how often the outbox is read while the sweep runs
REPO = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "orchestrator.tracking.writer"]


@contextlib.contextmanager
def writing_beside(log, lock=None):
    """Run the block with `log` deferred and a writer process applying its ops; afterwards `log` is
    direct again and holds no stale view of the runs the writer made. `lock`: the sweep folder's lock
    file, which the writer keeps open (so held) until it has applied everything, even past the driver."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    config = {"sweep_dir": str(log.sweep_dir), "uri": log.uri, "experiment": log.experiment, "name": log.name,
              "params": log.params, "spec_file": str(log.spec_file), "backoff_s": list(log.backoff_s),
              "down_s": log.down_s}
    try:  # its own session: a Ctrl-C stops the sweep, and the writer still applies what the sweep wrote
        with errors_file(log.sweep_dir) as stderr:  # what it says goes to the sweep's log, not the screen
            proc = subprocess.Popen(COMMAND, stdin=subprocess.PIPE, stderr=stderr, env=env, start_new_session=True,
                                    text=True, pass_fds=(lock.fileno(),) if lock is not None else ())
        proc.stdin.write(json.dumps(config) + "\n")
        proc.stdin.flush()
    except OSError as e:  # no process to be had: the driver writes to MLflow itself, as it does outside sweeps
        print(f"taskdisc: notice: no MLflow writer process ({e}); the driver writes to MLflow itself", flush=True)
        yield
        return
    log.deferred = True
    try:
        yield
    finally:
        log.deferred = False
        proc.stdin.close()
        if proc.wait() != 0:
            print(f"taskdisc: notice: the MLflow writer process exited with {proc.returncode}; the driver "
                  "writes what it left", flush=True)
        if log.pending():  # the writer left some: find its runs again before replaying them here
            log.reconnect()


@contextlib.contextmanager
def errors_file(sweep_dir: Path):
    """The sweep's log file opened for appending (DEVNULL where it cannot be: a full disk)."""
    from orchestrator.faults import log_path
    path = log_path(sweep_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a")
    except OSError:
        yield subprocess.DEVNULL
        return
    with f:
        yield f


def main() -> None:
    from orchestrator.tracking.sweep_log import SweepLog
    config = json.loads(sys.stdin.readline())
    log = SweepLog(Path(config.pop("sweep_dir")), spec_file=Path(config.pop("spec_file")),
                   backoff_s=tuple(config.pop("backoff_s")), replay=False, **config)
    ended = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), ended.set()), daemon=True).start()
    while not ended.wait(POLL_S):
        log.advance(final=False)
    log.advance(final=True)


if __name__ == "__main__":
    main()
