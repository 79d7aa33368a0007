"""One sweep folder, one driver: an advisory lock that a killed driver cannot leave stuck.

`flock` locks belong to the open file, so the kernel drops them when the holder exits in any way
(SIGKILL included); the lock file only says who holds it, for the message a second driver gets.
The sweep's MLflow writer process shares the lock (it inherits the open file): a driver killed while
its writer still applies the outbox leaves the folder held until the writer is done, and the next
driver waits for that instead of replaying the same outbox beside it.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path

from orchestrator.specs.io import SpecError

LOCK_FILE = ".driver.lock"
ORPHAN_WAIT_S = 120.0  # the longest a driver waits for the writer of a dead driver to finish its outbox


@contextlib.contextmanager
def sweep_lock(sweep_dir: Path):
    """Hold `sweep_dir` for this driver (yields the lock's open file, for the writer process to share);
    SpecError naming the holder if another live driver has it."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    f = open(sweep_dir / LOCK_FILE, "a+")
    deadline = time.monotonic() + ORPHAN_WAIT_S
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another driver"
            if _dead_driver(holder) and time.monotonic() < deadline:
                time.sleep(0.2)  # its MLflow writer still applies what it left: a few seconds
                continue
            f.close()
            raise SpecError(f"{sweep_dir} is in use by {holder}; wait for that sweep to end or stop it, "
                            "or give this one another name (--set name=...)") from None
    try:
        f.seek(0)
        f.truncate()
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        f.write(f"taskdisc sweep pid {os.getpid()} on {socket.gethostname()} since {since}")
        f.flush()
        yield f
    finally:
        f.close()


def _dead_driver(holder: str) -> bool:
    """Whether the lock's holder line names a driver process of this host that no longer runs."""
    words = holder.split()
    if len(words) < 6 or words[:3] != ["taskdisc", "sweep", "pid"] or words[5] != socket.gethostname():
        return False
    return words[3].isdigit() and not pid_alive(int(words[3]))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True
