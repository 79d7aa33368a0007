"""A sweep's MLflow runs as a log that never stops the sweep: retries, an outbox, replay.

Every write (a run started, metrics, artifacts, a run finished) is addressed by the trial's key
(or PARENT for the sweep's run), not by an MLflow run id, so it can wait. A write that fails after
a few retries with backoff marks MLflow down for a while; until it is back, writes go to the
sweep's outbox (`<sweep>/mlflow-outbox/<key>.jsonl`, one JSON op per line, in order) and are
replayed when it answers again: later in the sweep, on the next sweep or `--resume`, or by
`taskdisc sync`. A trial's final writes go to the outbox before its record row is written, so a
driver killed in between leaves them to replay, not lost.

While Tune runs a sweep the driver only appends to the outbox (`deferred`) and a writer process
(`writer.py`) applies the ops as they come, reading each file's complete lines from where it left
off: MLflow's ~50 ms of work per trial runs beside Tune's loop instead of in it.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Callable

from orchestrator.tracking.mlflow_runs import KEY_TAG, Tracker
from orchestrator.tracking.tags import PARENT

OUTBOX = "mlflow-outbox"
# MLflow's HTTP client retries for minutes by default; a sweep's log retries itself, then keeps the
# writes in its outbox, so each request may fail fast (a user's own settings win).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
# A trial's metrics wait in memory up to this long, then go to MLflow as one log_batch (its params in the
# first): a short trial costs a few MLflow writes whatever its epochs, a long one still shows progress.
FLUSH_S = 10.0


class SweepLog:
    def __init__(self, sweep_dir: Path, uri: str, experiment: str, name: str, params: dict, spec_file: Path,
                 backoff_s: tuple[float, ...] = (2.0,), down_s: float = 30.0, replay: bool = True):
        self.sweep_dir, self.uri, self.experiment = Path(sweep_dir), uri, experiment
        self.name, self.params, self.spec_file = name, params, spec_file
        self.backoff_s, self.down_s = backoff_s, down_s
        self.outbox = self.sweep_dir / OUTBOX
        self.tracker: Tracker | None = None
        self.ids: dict[str, str] = {}  # key -> MLflow run id
        self.earlier: dict[str, list[str]] = {}  # key -> unfinished runs of earlier attempts
        self.starts: dict[str, dict] = {}  # key -> its start op, for the outbox header
        self.started: set[str] = set()  # trials this driver started
        self.waiting: dict[str, list] = {}  # key -> [metrics, step, ts] not yet written
        self.since: dict[str, float] = {}  # key -> when its oldest waiting metrics came
        self.params_due: dict[str, dict] = {}  # key -> params to write with its next metrics
        self.down_until, self.warned, self.missed = 0.0, False, False
        self.deferred = False  # writes go to the outbox only; a writer process applies them
        self.applied: dict[str, int] = {}  # key -> bytes of its outbox file already applied
        if replay:
            self.flush()

    # -- what the sweep calls --------------------------------------------------------------
    def start(self, key: str, run_name: str, params: dict, tags: dict | None = None) -> None:
        """A trial's run; a retry of a trial this driver already started (its worker died) keeps its run."""
        if key in self.started:
            return
        self.started.add(key)
        # its params go with its first metrics (one MLflow write less), which always come before its finish
        self.starts[key] = {"op": "start", "name": run_name, "params": params, "tags": tags or {},
                            "params_with_metrics": True}
        self.params_due[key] = params
        self._write(key, self.starts[key])

    def metrics(self, key: str, metrics: dict, step: int) -> None:
        """Metrics of `step`; a trial's are batched (written at least every FLUSH_S and when it ends)."""
        if key == PARENT:
            self._write(key, self._batch(key, [[metrics, step, int(time.time() * 1000)]]))
            return
        self.waiting.setdefault(key, []).append([metrics, step, int(time.time() * 1000)])
        self.since.setdefault(key, time.monotonic())
        if time.monotonic() - self.since[key] >= FLUSH_S:
            self._write(key, self._batch(key))

    def _batch(self, key: str, extra: list = ()) -> dict:
        """One metrics op: the key's waiting metrics, then `extra`, with its params if not yet written."""
        self.since.pop(key, None)
        op = {"op": "metrics", "batch": self.waiting.pop(key, []) + list(extra)}
        params = self.params_due.pop(key, None)
        return {**op, "params": params} if params else op

    def artifacts(self, key: str, paths, folder: str | None = None) -> None:
        self._write(key, {"op": "artifacts", "paths": [str(p) for p in paths], "folder": folder})

    def finish(self, key: str, failed: bool = False) -> None:
        if self.waiting.get(key) or key in self.params_due:
            self._write(key, self._batch(key))
        self._write(key, {"op": "finish", "failed": failed})
        self._forget(key)

    def _forget(self, key: str) -> None:
        """A finished trial's state: the driver keeps nothing per trial beyond its end."""
        if key != PARENT:
            self.started.discard(key)
            self.starts.pop(key, None)

    def finish_trial(self, key: str, metrics: dict, step: int, artifacts, record: Callable[[], None],
                     inputs: list[dict] = ()) -> None:
        """A finished trial: its final writes are kept in the outbox, then `record()` writes its record
        row, then the writes go to MLflow. A driver killed anywhere in between loses nothing.
        `inputs`: the labels it trained on (name, digest, source), as MLflow dataset inputs."""
        self._append(key, {"op": "inputs", "inputs": list(inputs)},
                     self._batch(key, [[metrics, step, int(time.time() * 1000)]]),
                     {"op": "artifacts", "paths": [str(p) for p in artifacts], "folder": None},
                     {"op": "finish", "failed": False})
        record()
        if not self.deferred and self._up() and self._connect():
            self._advance(key, final=True)
        self._forget(key)

    def pending(self) -> list[str]:
        """Keys whose writes wait in the outbox."""
        return sorted(p.stem for p in self.outbox.glob("*.jsonl")) if self.outbox.is_dir() else []

    def flush(self) -> int:
        """Write whatever waits in the outbox to MLflow if it answers; returns how many keys still wait."""
        self.advance(final=True)
        return len(self.pending())

    def advance(self, final: bool) -> None:
        """Apply the outbox's waiting ops if MLflow answers. `final`: nobody appends any more, so each
        file is removed once applied, or rewritten to what is left (a writer process, while the driver
        appends: complete lines only, each file removed once its trial's finish is applied)."""
        if self._up() and self._connect():
            for key in [PARENT] + [k for k in self.pending() if k != PARENT]:
                if (self.outbox / f"{key}.jsonl").is_file() and not self._advance(key, final):
                    break
        if final and self.outbox.is_dir() and not any(self.outbox.iterdir()):
            self.outbox.rmdir()

    def reconnect(self) -> None:
        """Forget the runs this log knew (another process made some since): the next write lists them anew."""
        self.tracker, self.ids, self.earlier, self.applied = None, {}, {}, {}

    # -- MLflow, or the outbox -----------------------------------------------------------------
    def _up(self) -> bool:
        return time.monotonic() >= self.down_until

    def _down(self, error: Exception) -> None:
        self.missed = True
        if not self.warned:
            self.warned = True
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            warnings.warn(f"MLflow at {self.uri} did not answer ({type(error).__name__}: {first}); the sweep goes on "
                          f"and its MLflow writes wait in {self.outbox} until it is back "
                          f"(`taskdisc sync {self.sweep_dir}` writes them)", stacklevel=3)
        self.down_until = time.monotonic() + self.down_s

    def _retried(self, fn: Callable):
        for wait in (*self.backoff_s, None):
            try:
                return fn()
            except Exception:  # a log may fail in any way (locked, read-only, server gone): never the sweep
                if wait is None:
                    raise
                time.sleep(wait)

    def _connect(self) -> bool:
        """The tracker and the parent run, made on first success; False (and down) if MLflow fails."""
        if self.tracker is not None:
            return True
        try:
            tracker = self._retried(lambda: Tracker(self.uri, self.experiment))
            self.ids[PARENT] = self._retried(lambda: tracker.parent_run(self.sweep_dir, self.name, self.params,
                                                                        self.spec_file))
            # a waiting key's run named in its outbox goes on; its other runs are replaced when it starts.
            # A finished run is its trial's record row's (MLflow's finish follows the row): it stays.
            goes_on = {self._header_run(k) for k in self.pending()}
            for run in self._retried(lambda: tracker.children(self.ids[PARENT], unfinished=True)):
                key = run.data.tags.get(KEY_TAG)  # runs of trials that start again are replaced then
                if key and run.info.run_id not in goes_on:
                    self.earlier.setdefault(key, []).append(run.info.run_id)
                    if run.info.status == "RUNNING":  # its driver was killed: say so until the trial reruns
                        self._retried(lambda: tracker.finish(run.info.run_id, status="KILLED"))
        except Exception as e:
            self._down(e)
            return False
        self.tracker = tracker
        return True

    def _write(self, key: str, op: dict) -> None:
        if self.deferred:
            self._append(key, op)
            return
        if self.missed and self._up():  # back after an outage: what waits goes first, in order
            self.missed = False
            self.flush()
        unknown = key != PARENT and key not in self.ids and op["op"] != "start"  # its start is waiting
        if unknown or (self.outbox / f"{key}.jsonl").is_file() or not self._up() or not self._connect():
            self._append(key, op)
            return
        try:
            self._retried(lambda: self._apply(key, op))
        except Exception as e:
            self._down(e)
            self._append(key, op)

    def _append(self, key: str, *ops: dict) -> None:
        path = self.outbox / f"{key}.jsonl"
        lines = [] if path.is_file() or ops[0]["op"] == "start" else [self._header(key)]
        self.outbox.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(op) + "\n" for op in [*lines, *ops] if op is not None).encode()
        with open(path, "ab+") as f:
            # a line cut short (a full disk, a killed driver) stays a line of its own, which replay drops
            cut = f.seek(0, os.SEEK_END) > 0 and (f.seek(-1, os.SEEK_END), f.read(1))[1] != b"\n"
            f.write(b"\n" + text if cut else text)

    def _header(self, key: str) -> dict | None:
        """The first line of a key's outbox: how to find or make its run when replaying."""
        if key == PARENT:
            return None
        return {**self.starts.get(key, {"op": "start", "name": key, "params": {}}), "run_id": self.ids.get(key)}

    def _header_run(self, key: str) -> str | None:
        with open(self.outbox / f"{key}.jsonl") as f:
            first = f.readline()
        try:
            return json.loads(first).get("run_id")
        except ValueError:
            return None

    def _advance(self, key: str, final: bool) -> bool:
        """Apply the key's ops not yet applied, in order; False if MLflow failed (the rest waits: kept in
        memory, or written back with the run id when `final`). A line cut short (a killed writer, a full disk) is
        dropped."""
        path = self.outbox / f"{key}.jsonl"
        start = self.applied.get(key, 0)
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read()
        lines = data[:data.rfind(b"\n") + 1].splitlines(keepends=True)
        ops = [_op(line) for line in lines]
        for i, op in enumerate(ops):
            if op is None:
                continue
            try:
                if op["op"] == "start":
                    self.starts[key] = {k: v for k, v in op.items() if k != "run_id"}
                    run_id = op.get("run_id")
                    if run_id and (self.ids.get(key) == run_id or self._retried(lambda: self.tracker.exists(run_id))):
                        self.ids[key] = run_id
                        continue
                self._retried(lambda: self._apply(key, op))
            except Exception as e:
                self._down(e)
                if final:
                    rest = [o for o in ops[i:] if o is not None and o["op"] != "start"]
                    path.write_text("".join(json.dumps(o) + "\n" for o in [self._header(key), *rest] if o is not None))
                    self.applied.pop(key, None)
                else:
                    self.applied[key] = start + sum(len(line) for line in lines[:i])
                return False
        whole = [o for o in ops if o is not None]
        if final or (whole and whole[-1]["op"] == "finish" and key != PARENT):
            path.unlink()
            self.applied.pop(key, None)
        else:
            self.applied[key] = start + sum(len(line) for line in lines)
        return True

    def _apply(self, key: str, op: dict) -> None:
        t = self.tracker
        if op["op"] == "start":
            # replaces: the trial's runs of killed drivers, and one an outbox replay made for it just now
            replaces = self.earlier.pop(key, []) + ([self.ids[key]] if key in self.ids else [])
            params = {} if op.get("params_with_metrics") else op["params"]
            self.ids[key] = t.start_child(self.ids[PARENT], op["name"], params, key, replaces=replaces,
                                          tags=op.get("tags") or {})
            self.starts[key] = {k: v for k, v in op.items() if k != "run_id"}
        elif op["op"] == "inputs":
            t.log_inputs(self.ids[key], op["inputs"])
        elif op["op"] == "metrics":
            batch = op["batch"] if "batch" in op else [[op["metrics"], op["step"], op.get("ts")]]
            t.log_batch(self.ids[key], batch, op.get("params") or {})
        elif op["op"] == "artifacts":
            t.log_artifacts(self.ids[key], [p for p in op["paths"] if Path(p).exists()], op.get("folder"))
        elif op["op"] == "finish":
            t.finish(self.ids[key], failed=op["failed"])
            if key != PARENT:  # nothing comes after a trial's finish: its state goes
                del self.ids[key]
                self.starts.pop(key, None)


def _op(line: bytes) -> dict | None:
    """The op of an outbox line; None for a line cut short by a full disk or a killed process."""
    try:
        op = json.loads(line)
    except ValueError:
        return None
    return op if isinstance(op, dict) and "op" in op else None
