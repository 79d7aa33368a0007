"""The driver's one fault path: whatever stops a sweep ends in at most three lines on stderr.

    taskdisc: sweep quickstart stopped by SIGINT (Ctrl-C) (details: runs/quickstart/logs/driver.log)
    kept: 6 of 8 trials recorded in runs/quickstart
    resume: taskdisc sweep specs/quickstart.yaml

What happened, what was kept, the command that finishes the rest (a rerun skips recorded trials). The
traceback, and whatever Ray and Tune logged during the sweep, go to the sweep's `logs/driver.log`
(to a temporary folder when the sweep's filesystem is full). A signal exits 128 + its number (130,
143, 129), anything else 1; bad input keeps its own one line and exit 2 (`cli.py`).
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

LOGS = "logs"
LOG_FILE = "driver.log"
RESERVE = 16 * 2**20  # bytes a sweep's own writes (record rows, outbox, logs) want free beside checkpoints
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SIGNAL_NAMES = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP (terminal closed)"}


class Stopped(BaseException):
    """A signal stopped the sweep. Not an Exception: no `except Exception` in Ray or Tune swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@dataclass
class DiskFull(Exception):
    """A filesystem the sweep writes to has too little space left."""
    path: str  # the folder the sweep writes to there
    free: int  # bytes free now
    need: int  # bytes the sweep needs free to go on (an estimate: its checkpoints in flight and its own writes)

    def __str__(self) -> str:
        return (f"no space left on {mount_of(self.path)} (where {self.path} is): {mb(self.free)} free, the sweep "
                f"needs about {mb(self.need)}; free {mb(max(self.need - self.free, 0))} or more")


@dataclass
class SweepAt:
    """Where a fault found the driver: the innermost sweep it was running."""
    name: str
    sweep_dir: Path
    recorded: int
    total: int


def mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


def nearest_existing(path: str | Path) -> Path:
    """`path`, or its nearest parent that exists (where a folder yet to be made would be)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def mount_of(path: str | Path) -> str:
    """The mount point of the filesystem holding `path`."""
    p = nearest_existing(Path(path).resolve())
    while not os.path.ismount(p):
        p = p.parent
    return str(p)


def free_bytes(path: str | Path) -> int | None:
    """Free bytes of the filesystem holding `path` (None: not a local path, e.g. s3://)."""
    if "://" in str(path):
        return None
    try:
        return shutil.disk_usage(nearest_existing(path)).free
    except OSError:
        return None


def causes(error: BaseException):
    """`error` and what caused it, outermost first (Tune wraps a callback's exception in a TuneError, Ray a
    worker's in a RayTaskError with `cause`)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = getattr(error, "cause", None) or error.__cause__ or error.__context__


def names_disk_full(text: str) -> bool:
    """Whether an error's text (one passed on as text: a worker's, Tune's error file) is ENOSPC."""
    return "[Errno 28]" in text or "No space left on device" in text


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` or a cause of it is ENOSPC."""
    return any(isinstance(e, DiskFull) or (isinstance(e, OSError) and e.errno == errno.ENOSPC)
               or names_disk_full(str(e)) for e in causes(error))


def checkpoint_bytes(folder: Path) -> int:
    """The largest trial checkpoint under `folder` now (0 if none): what each trial in flight writes next."""
    sizes = [0]
    for state in folder.rglob("checkpoint_*/*"):
        with contextlib.suppress(OSError):
            sizes.append(state.stat().st_size)
    return max(sizes)


def attach(error: BaseException, spec, record) -> None:
    """Note on `error` the sweep it stopped (the innermost, when follow-up sweeps run), and make a full disk
    met by the driver's own writes a DiskFull naming the space needed."""
    if getattr(error, "sweep_at", None) is None:
        keys = {t.key for t in spec.iter_trials()}
        recorded = len(keys & record.done_keys())
        error.sweep_at = SweepAt(spec.name, Path(spec.sweep_dir), recorded, len(keys))
        found = next((e for e in causes(error) if isinstance(e, DiskFull)), None)
        if found is None and is_disk_full(error):
            need = checkpoint_bytes(Path(spec.sweep_dir)) * (spec.concurrency or 1) + RESERVE
            found = DiskFull(str(spec.sweep_dir), free_bytes(spec.sweep_dir) or 0, need)
        error.disk_full = found


@contextlib.contextmanager
def signals_stop():
    """SIGINT, SIGTERM and SIGHUP raise Stopped in the driver (Tune's own SIGINT handling is off: it would
    end the sweep with its own resume advice). Further signals are ignored while the driver stops: its
    MLflow writer finishes and Ray shuts down (seconds); cut short, Ray's processes would be left behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    before = {s: signal.getsignal(s) for s in SIGNALS}

    def stop(signum, frame):
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        raise Stopped(signum)

    for s in SIGNALS:
        signal.signal(s, stop)
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


class QuietFileHandler(logging.FileHandler):
    """A log file made (with its folder) at its first record, never before, that never speaks on stderr: a
    write that fails (a full disk) is dropped."""

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def handleError(self, record) -> None:
        pass


def route_ray_logs(path: Path) -> Callable[[], None]:
    """Send Ray's and Tune's log records to `path` (created on the first one), not to stderr; returns the
    function that undoes it. The "ray" logger's own handlers are set aside, and its children that print by
    themselves pass theirs up. `ray.init(configure_logging=False)` clears the "ray" logger's handlers,
    which leaves its records to logging's handler of last resort (stderr): that is the file too."""
    named = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict) if n.split(".")[0] == "ray"]
    top = logging.getLogger("ray")
    saved = [(lg, lg.handlers[:], lg.propagate) for lg in {top, *named}]
    handler = QuietFileHandler(path, delay=True)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for lg, handlers, _ in saved:
        if lg is not top and handlers:
            lg.handlers, lg.propagate = [], True
    top.handlers, top.propagate = [handler], False
    last_resort, logging.lastResort = logging.lastResort, handler

    def undo() -> None:
        logging.lastResort = last_resort
        handler.close()
        for lg, handlers, propagate in saved:
            lg.handlers, lg.propagate = handlers, propagate
    return undo


@contextlib.contextmanager
def ray_logs_to(path: Path, shutdown_on_fault: bool = False):
    """`route_ray_logs` for the block. `shutdown_on_fault`: when the block raises, a Ray it started is shut
    down inside it, so that what Ray logs as it goes (errors of work the stopped sweep left unfinished,
    e.g. a checkpoint write that met a full disk) goes to the file too."""
    import ray
    undo, started_before = route_ray_logs(path), ray.is_initialized()
    try:
        yield
    except BaseException:
        if shutdown_on_fault and not started_before and ray.is_initialized():
            ray.shutdown()
        raise
    finally:
        undo()


def log_path(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / LOGS / LOG_FILE


def write_log(sweep_dir: Path | None, text: str) -> Path:
    """Append `text` to the sweep's driver log; where that cannot be written, to a temporary file."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    entry = f"\n=== {stamp} taskdisc pid {os.getpid()}: {' '.join(sys.argv)}\n{text}\n"
    if sweep_dir is not None:
        path = log_path(sweep_dir)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as f:
                f.write(entry)
            return path
        except OSError:
            pass
    fd, name = tempfile.mkstemp(prefix="taskdisc-fault-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        f.write(entry)
    return Path(name)


def resume_command(argv: list[str]) -> str:
    """The command that resumes: the same `taskdisc sweep ...` (a rerun skips what the record holds)."""
    return shlex.join(["taskdisc", *argv])


def report(error: BaseException, argv: list[str]) -> int:
    """Print the fault's three lines on stderr, its traceback to the log; returns the exit code."""
    at: SweepAt | None = getattr(error, "sweep_at", None)
    shown = getattr(error, "disk_full", None) or error
    stopped = f"sweep {at.name} stopped" if at else "stopped"
    if isinstance(error, Stopped):
        what, code = f"{stopped} by {SIGNAL_NAMES.get(error.signum, error.signum)}", 128 + error.signum
    elif isinstance(shown, DiskFull):
        what, code = f"{stopped}: {shown}", 1
    else:
        first = (str(error).strip().splitlines() or [""])[0][:300]
        what, code = f"{stopped}: {type(error).__name__}: {first}", 1
    details = write_log(at.sweep_dir if at else None, f"{what}\n{''.join(traceback.format_exception(error))}")
    lines = [f"taskdisc: {what} (details: {details})"]
    if at:
        lines.append(f"kept: {at.recorded} of {at.total} trials recorded in {at.sweep_dir}")
    lines.append(f"resume: {resume_command(argv)}")
    print("\n".join(lines), file=sys.stderr, flush=True)
    return code


def report_unfinished(spec, recorded: int, argv: list[str]) -> None:
    """The three lines for a sweep that ended with trials not recorded (their errors are in its log)."""
    failed = spec.trial_count() - recorded
    print(f"taskdisc: {failed} trial{'s' if failed != 1 else ''} of sweep {spec.name} did not finish (details: "
          f"{log_path(Path(spec.sweep_dir))})\nkept: {recorded} of {spec.trial_count()} trials recorded in "
          f"{spec.sweep_dir}\nresume: {resume_command(argv)}", file=sys.stderr, flush=True)
