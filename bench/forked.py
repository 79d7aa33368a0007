"""Run a function in a forked child and get its result back: the GPU check's unit of isolation.

A child has its own CUDA context (a crash, a hang or an out-of-memory error stays in it, and
its peak memory is its own) but skips re-importing torch, which costs seconds per process on
a small CPU. Forking is safe only from a process that has not yet initialised CUDA or run a
parallel CPU kernel (GNU OpenMP's thread pool does not survive a fork), so every caller forks
before it computes anything itself.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import select
import signal
import sys
import time
import traceback
from typing import Any, Callable


class ChildTimeout(Exception):
    """The child ran past its time limit and was killed."""


class ChildFailed(Exception):
    """The child raised (the message is its exception) or died without a result."""


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent dies, however it dies (Linux): a child in its own
    process group is out of reach of a kill of the parent's group (the device tool's at its time
    limit, a shell's), and would hold the GPU on. `parent`: the pid that forked this process."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the line above took effect
        os._exit(1)


def _run_child(fn: Callable, args: tuple, write_fd: int, log: str | None, new_group: bool, parent: int) -> None:
    """The child's whole life: it never returns into the parent's code, whatever fails."""
    try:
        die_with_parent(parent)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the parent may turn SIGTERM into an exception
        if new_group:
            os.setpgid(0, 0)
        if log is not None:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
        try:
            out = ("ok", fn(*args))
        except BaseException as e:  # anything the child raises is the result the parent reports
            traceback.print_exc()
            out = ("error", f"{type(e).__name__}: {e}")
        try:
            payload = pickle.dumps(out)
        except Exception as e:  # an unpicklable result is the child's failure, not the parent's
            payload = pickle.dumps(("error", f"result not picklable: {e}"))
        with os.fdopen(write_fd, "wb") as f:
            f.write(payload)
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(0)  # skip the parent's atexit handlers and finalisers, which this copy must not run


def _kill(pid: int, group: bool) -> None:
    """SIGTERM, a short grace, then SIGKILL, and reap; the whole process group when `group`."""
    send = os.killpg if group else os.kill
    with contextlib.suppress(ProcessLookupError):
        send(pid, signal.SIGTERM)
    deadline = time.monotonic() + 3.0
    while not os.waitpid(pid, os.WNOHANG)[0]:
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                send(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
        time.sleep(0.1)
    if group:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # stragglers the child started that ignored SIGTERM


def _drain(fd: int, chunks: list[bytes]) -> None:
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return
        chunks.append(chunk)


def _collect(pid: int, fd: int, deadline: float | None, timeout: float | None, group: bool
             ) -> tuple[list[bytes], int]:
    """The child's result bytes and wait status. Ends at EOF or at the child's exit, whichever
    comes first: a grandchild the child left running may hold the pipe open."""
    chunks: list[bytes] = []
    while True:
        if deadline is not None and time.monotonic() >= deadline:
            _kill(pid, group)
            raise ChildTimeout(f"killed after {timeout:.0f} s")
        if select.select([fd], [], [], 0.2)[0]:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return chunks, os.waitpid(pid, 0)[1]
            chunks.append(chunk)
            continue
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            _drain(fd, chunks)  # written before the exit, not read yet
            return chunks, status


def call_forked(fn: Callable, *args, timeout: float | None = None, log: str | None = None,
                new_group: bool = False) -> Any:
    """fn(*args) in a forked child. `log`: the child's stdout and stderr go there. `new_group`:
    the child leads a new process group, so a timeout also kills everything it started.
    Raises ChildTimeout or ChildFailed."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _run_child(fn, args, write_fd, log, new_group, parent)
    os.close(write_fd)
    if new_group:
        with contextlib.suppress(PermissionError, ProcessLookupError):
            os.setpgid(pid, pid)  # also here: the parent may signal the group before the child set it
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        chunks, status = _collect(pid, read_fd, deadline, timeout, new_group)
    except ChildTimeout:
        raise
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): the child must not run on without us
        _kill(pid, new_group)
        raise
    finally:
        os.close(read_fd)
    if new_group:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # stragglers the child started and left behind
    if not chunks:
        how = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"exit code {os.WEXITSTATUS(status)}")
        raise ChildFailed(f"died without a result ({how})")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "error":
        raise ChildFailed(value)
    return value
