"""What the Tune layer needs from a kind of trial (agreement, discovery): plain data and a protocol.

Worker side, `start` returns a `Runner`; driver side, `describe`, `progress`, `note` and
`complete` turn configs and results into run names, MLflow metrics, progress lines and record rows.
Files travel through Ray, not a shared filesystem: `inputs` names the driver's files a trial reads
(shipped to every actor), and a runner's outcome carries the files it exports. Nothing here imports
Ray or MLflow, so adapters are testable without either.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol

import torch

from trainables.config import ConfigError
from trainables.order import OrderError
from trainables.sources import DatasetError
from trainables.splits import SplitError
from trainables.labels import TaskError

# Errors of bad input (a task file, a dataset, a split): a retry fails the same way, so a trial that
# raises one ends with it as its outcome instead of being retried.
INPUT_ERRORS = (TaskError, DatasetError, ConfigError, SplitError, OrderError)


@dataclass(frozen=True)
class TrialInfo:
    key: str  # identity in the record: what a resumed sweep skips
    run_name: str  # deterministic MLflow/Tune name
    params: dict  # MLflow params of the child run
    tags: dict = field(default_factory=dict)  # MLflow tags for the UI's filters and group-by (str values)

    @property
    def short_name(self) -> str:
        """The MLflow run name, e.g. 'real-3 s0': without the sweep's name, which the parent run
        shows, so it fits the UI's runs table ('spec__real-3__seed0' is cut off there)."""
        return self.run_name.split("__", 1)[-1].replace("__seed", " s").replace("__", " ")


@dataclass(frozen=True)
class TaskInput:
    """Labels a trial trained on, logged as an MLflow dataset input of its run."""
    name: str  # the task, e.g. 'real-3'
    digest: str  # of the labels themselves (TaskLabels.digest)
    source: str  # where they come from: dataset and task kind or file


@dataclass(frozen=True)
class Completed:
    row: dict  # record row
    metrics: dict  # final metrics of the child run
    step: int  # MLflow step of those metrics
    line: str  # progress line
    artifacts: list[Path] = field(default_factory=list)
    inputs: list[TaskInput] = field(default_factory=list)


class Runner(Protocol):
    device: torch.device

    @property
    def done(self) -> bool: ...

    def step(self) -> dict: ...

    def outcome(self) -> dict: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class RunnerBase:
    """A runner around a stateful run (`self.run`: done, state_dict, load_state_dict) on `self.device`."""
    run: Any
    device: torch.device

    @property
    def done(self) -> bool:
        return self.run.done

    def state_dict(self) -> dict:
        return self.run.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.run.load_state_dict(state)


def write_exports(out_dir: Path, files: dict[str, bytes]) -> list[Path]:
    """Write the files a worker exported (name -> bytes) into `out_dir` on the driver; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out_dir / name).write_bytes(data)
    return sorted(out_dir / name for name in files)


class Adapter(Protocol):
    def inputs(self, trial: dict) -> list[str]: ...

    def start(self, trial: dict, device: str, cache: dict, files: dict[str, str]) -> Runner: ...

    def describe(self, trial: dict) -> TrialInfo: ...

    def progress(self, result: dict) -> Iterable[tuple[int, dict]]: ...

    def note(self, trial: dict, result: dict) -> str | None: ...

    def complete(self, trial: dict, outcome: dict) -> Completed: ...

    def stopped(self, trial: dict, result: dict) -> Completed:
        """A trial a Tune scheduler stopped before its end (only sweeps with a scheduler have them)."""
        ...
