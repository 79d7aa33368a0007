"""One sweep folder, one driver: an advisory lock that a killed driver cannot leave stuck.

`flock` locks belong to the open file, so the kernel drops them when the holder exits in any way
(SIGKILL included); the lock file only says who holds it, for the message a second driver gets.
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


@contextlib.contextmanager
def sweep_lock(sweep_dir: Path):
    """Hold `sweep_dir` for this driver; SpecError naming the holder if another driver has it."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    f = open(sweep_dir / LOCK_FILE, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another driver"
        f.close()
        raise SpecError(f"{sweep_dir} is in use by {holder}; wait for that sweep to end or stop it, "
                        "or give this one another name (--set name=...)") from None
    try:
        f.seek(0)
        f.truncate()
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        f.write(f"taskdisc sweep pid {os.getpid()} on {socket.gethostname()} since {since}")
        f.flush()
        yield
    finally:
        f.close()
