"""The trial actor: one Tune trainable for every trial kind, reused across trials.

It runs one trial of its sweep's kind (the kind's adapter, `trials/api.py`) on its device, keeps the dataset it loaded
(`self.cache`) for the next trial, and writes the sweep's input files once into its own folder.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
from pathlib import Path

import torch
from ray import tune

from orchestrator.actor_pool import wait_for_pool
from orchestrator.faults import RESERVE, free_bytes
from orchestrator.tracking.sweep_lock import pid_alive
from orchestrator.trials.actor_data import LOADS
from orchestrator.trials.api import INPUT_ERRORS

STATE_FILE = "state.pt"
INPUTS_PREFIX = "taskdisc-inputs-"  # + the actor's pid: folders of dead actors are found and removed


class TrialActor(tune.Trainable):
    """Runs one trial of `adapter`'s kind; keeps `self.cache` (the dataset) across trials.

    `files` (driver path -> bytes, through Ray's object store) are the input files of every
    trial; they are written once into this actor's folder, so no node needs the driver's disk.
    """

    def setup(self, config: dict, adapter=None, files: dict[str, bytes] | None = None, gate=None) -> None:
        self.adapter = adapter
        self.gate = gate  # this actor's first step waits for the pool (`actor_pool.py`)
        self.cache: dict = {}
        self.inputs = Path(tempfile.mkdtemp(prefix=f"{INPUTS_PREFIX}{os.getpid()}-"))
        remove_orphans(self.inputs.parent)
        self.files = materialize(files or {}, self.inputs)
        self._begin(config)

    def _begin(self, config: dict) -> None:
        torch.set_num_threads(max(1, int(config["threads"])))
        self.every, self.storage = config["checkpoint_every"], config["storage"]
        self.error, self.runner = None, None
        device, self.notice = trial_device(config["device"])
        try:
            self.runner = self.adapter.start(config["trial"], device, self.cache, self.files)
        except INPUT_ERRORS as e:  # bad input fails the same way on every retry: report it, do not raise
            self.error = str(e)

    def step(self) -> dict:
        if self.gate is not None:
            wait_for_pool(self.gate)
            self.gate = None
        if self.error is not None:
            return {"done": True, "outcome": {"error": self.error}}
        try:
            metrics = self.runner.step()
        except INPUT_ERRORS as e:
            self.runner = None
            return {"done": True, "outcome": {"error": str(e)}}
        metrics["data/loads"] = self.cache.get(LOADS, 0)
        if self.notice:  # once per trial; the driver prints each distinct notice once
            metrics["notice"], self.notice = self.notice, None
        if self.runner.done:
            metrics["outcome"] = self.runner.outcome()
            metrics["done"] = True
        elif self.every and (self.iteration + 1) % self.every == 0:
            # asked here, not by Tune's checkpoint_frequency, which also saves at a trial's last step (as does
            # its checkpoint_at_end): a finished trial's checkpoint is never read, its record row is
            metrics.update(self._room_for_checkpoint())
        return metrics

    def _room_for_checkpoint(self) -> dict:
        """Ask Tune for a checkpoint if the sweep's storage has room for it; else report the fault (the
        driver stops the sweep) rather than fail the write, which Tune would retry to no end."""
        need = state_bytes(self.runner.state_dict())
        free = free_bytes(self.storage) if Path(self.storage).exists() else None  # another node's disk: unknown
        if free is not None and free < need + RESERVE:
            return {"fault": {"path": self.storage, "free": free, "need": need + RESERVE}}
        return {"should_checkpoint": True, "checkpoint_bytes": need}

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        if self.runner is not None:  # None: the trial ended on bad input, nothing to resume
            torch.save(self.runner.state_dict(), os.path.join(checkpoint_dir, STATE_FILE))

    def load_checkpoint(self, checkpoint_dir: str) -> None:
        if self.runner is not None:
            self.runner.load_state_dict(torch.load(os.path.join(checkpoint_dir, STATE_FILE), weights_only=True,
                                               map_location=self.runner.device))

    def reset_config(self, new_config: dict) -> bool:
        self._begin(new_config)
        return True

    def cleanup(self) -> None:
        shutil.rmtree(self.inputs, ignore_errors=True)


def state_bytes(state) -> int:
    """Bytes of the tensors in a (nested) state dict: about what its checkpoint file takes."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(state_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_bytes(v) for v in state)
    return 0


def trial_device(requested: str) -> tuple[str, str | None]:
    """The device a trial trains on here, and a notice when it is not the one asked for. Ray hands out
    GPUs it was told about (`--num-gpus`, a node type's resources), not ones CUDA can see: a trial given a
    GPU on a node without CUDA (a CPU-only torch, a missing driver, a test cluster) trains on the CPU."""
    if requested.startswith("cuda") and not torch.cuda.is_available():
        return "cpu", (f"{socket.gethostname()} has no CUDA (torch {torch.__version__}): trials given a GPU "
                       "there train on its CPU, much slower")
    return requested, None


def remove_orphans(folder: Path) -> None:
    """Delete input folders of actors that died without cleanup (SIGKILL, a lost node's restart)."""
    for path in folder.glob(f"{INPUTS_PREFIX}*-*"):
        pid = path.name[len(INPUTS_PREFIX):].split("-")[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def materialize(files: dict[str, bytes], folder: Path) -> dict[str, str]:
    """Write each file under `folder`, keeping files of one source folder together (a task
    table finds its test-image sibling by name); returns driver path -> local path."""
    local = {}
    for path, data in files.items():
        target = folder / hashlib.sha256(str(Path(path).parent).encode()).hexdigest()[:12] / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        local[path] = str(target)
    return local
