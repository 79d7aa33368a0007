"""The discovery trial: one encoder, `steps_per_report` meta-steps per Tune step
(wraps trainables.discovery.DiscoveryRun). At the end the worker exports the task tables
(trained and untrained encoder) and the encoder checkpoint; they travel back with the result
and the driver writes them into the sweep folder, so no shared filesystem is needed.

Under PBT a trial's state records its `owner` (trial key) and the encoder's hyperparameter
`schedule`: loading another trial's state is an exploit, taken over under this trial's new
hyperparameters, and the schedule grows by one segment."""
from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import torch

from trainables.discovery import DiscoveryRun, save_encoder, table_of_test_images, write_table
from trainables.discovery.stats import closest_real_tasks
from trainables.order import image_order

from orchestrator.trials.actor_data import actor_images
from orchestrator.kinds.discovery.spec import CLOSENESS, CSV, ENCODER, TABLE, UNTRAINED, DiscoveryTrial
from orchestrator.kinds.discovery.search import OBJECTIVE, START_ONLY
from orchestrator.specs.io import to_plain
from orchestrator.trials.api import Completed, RunnerBase, TrialInfo, write_exports


class DiscoveryRunner(RunnerBase):
    def __init__(self, trial: DiscoveryTrial, device: str, cache: dict, backbone: str | None = None):
        self.dataset, self.train, self.test = actor_images(cache, trial.dataset, device)
        self.trial, self.backbone = trial, backbone
        self.run = DiscoveryRun(self.train, self.test, trial.run_config, backbone)
        self.device = self.train.device
        self.last: dict = {}
        # Segments of the encoder's training: from which meta-step, by which trial, under which values;
        # the first names the initial weights, which an exploit brings from another trial.
        self.schedule = [{**self.segment(0), "encoder_seed": trial.config.encoder_seed}]

    def segment(self, step: int) -> dict:
        return {"from_step": step, "run": self.trial.run_name, **self.trial.tuned}

    def step(self) -> dict:
        history = []
        for _ in range(self.trial.steps_per_report):
            if self.run.done:
                break
            metrics = self.run.step()
            objective = self.trial.search.objective(metrics)
            if objective is not None:
                metrics[OBJECTIVE] = objective
            history.append({**metrics, **{f"search/{k}": v for k, v in self.trial.tuned.items()}})
        self.last = history[-1] if history else self.last
        # Tune checks every result for its scheduler's metric: NaN (not measured) between quick evaluations.
        return {"step": self.run.steps, OBJECTIVE: math.nan, **self.last, "history": history}

    def state_dict(self) -> dict:
        return {**self.run.state_dict(), "owner": self.trial.key, "schedule": self.schedule}

    def load_state_dict(self, state: dict) -> None:
        exploit = state["owner"] != self.trial.key
        self.run.load_state_dict(state, retuned=tuple(self.trial.tuned) + START_ONLY if exploit else ())
        self.schedule = state["schedule"] + ([self.segment(state["steps"])] if exploit else [])

    def outcome(self) -> dict:
        """Export the tasks of the trained encoder and of the same encoder before training."""
        train, test = self.run.labels()  # calibrates the encoder's BatchNorm first
        start = dataclasses.replace(self.trial.config, encoder_seed=self.schedule[0]["encoder_seed"])
        before_train, before_test = DiscoveryRun(self.train, self.test, start, self.backbone).labels()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            train_order, test_order = image_order(self.dataset.train_x), image_order(self.dataset.test_x)
            for labels, name in ((train, TABLE), (train, CSV), (before_train, UNTRAINED)):
                write_table(labels.cpu(), out / name, train_order)
            for labels, name in ((test, TABLE), (before_test, UNTRAINED)):
                write_table(labels.cpu(), table_of_test_images(out / name), test_order)
            save_encoder(self.run.encoder, self.run.config, out / ENCODER)
            final = {k: v for k, v in self.last.items() if k.startswith(("discovery/", "eval/", "search/"))}
            final.update(write_closeness(train, before_train, self.dataset.train_y, out / CLOSENESS))
            files = {p.name: p.read_bytes() for p in out.iterdir()}
        return {"files": files, "steps": self.run.steps, "final": final, "wall_s": self.run.wall_s,
                "n_tasks": int(train.shape[1]), "final_config": to_plain(self.run.config),
                "schedule": self.schedule}


def write_closeness(trained: torch.Tensor, untrained: torch.Tensor, train_y: torch.Tensor, path: Path) -> dict:
    """Each task's closest real task and their label agreement, trained and untrained, as a CSV at `path`;
    returns the means as metrics (nothing for datasets without real tasks)."""
    found = [closest_real_tasks(labels, train_y) for labels in (trained, untrained)]
    if found[0] is None:
        return {}
    (index, agreement), (index0, agreement0) = found
    rows = np.column_stack([np.arange(len(index)), index, agreement, index0, agreement0])
    np.savetxt(path, rows, fmt=["%d", "%d", "%.4f", "%d", "%.4f"], delimiter=",", comments="",
               header="task,closest_real,agreement,untrained_closest_real,untrained_agreement")
    return {"discovery/closest_real_agreement": float(agreement.mean()),
            "discovery/untrained_closest_real_agreement": float(agreement0.mean())}


class DiscoveryAdapter:
    def inputs(self, trial: dict) -> list[str]:
        backbone = trial["config"].get("backbone_ckpt")
        return [backbone] if backbone else []

    def start(self, trial: dict, device: str, cache: dict, files: dict[str, str]) -> DiscoveryRunner:
        backbone = trial["config"].get("backbone_ckpt")
        return DiscoveryRunner(DiscoveryTrial.from_config(trial), device, cache, files[backbone] if backbone else None)

    def describe(self, trial: dict) -> TrialInfo:
        t = DiscoveryTrial.from_config(trial)
        params = {"key": t.key, "dataset": t.dataset.name, **{f"discovery.{k}": v for k, v in to_plain(t.config).items()}}
        tags = {"arch": t.config.arch, "encoder_seed": str(t.config.encoder_seed), "grid_point": t.label or "-"}
        return TrialInfo(t.key, t.run_name, params, tags)

    def progress(self, result: dict):
        for m in result.get("history", []):
            yield int(m["step"]), {k: v for k, v in m.items() if k != "step"}

    def note(self, trial: dict, result: dict) -> str:
        t = DiscoveryTrial.from_config(trial)
        return (f"step {result['step']}/{t.config.meta_steps}  agreement_loss="
                f"{result.get('discovery/agreement_loss', float('nan')):.4f}  uniformity_loss="
                f"{result.get('discovery/uniformity_loss', float('nan')):.3f}  balance="
                f"{result.get('discovery/balance', float('nan')):.3f}")

    def complete(self, trial: dict, outcome: dict) -> Completed:
        t = DiscoveryTrial.from_config(trial)
        exported = write_exports(t.out_dir, outcome["files"])
        paths = {"table": t.out_dir / TABLE, "csv": t.out_dir / CSV, "encoder": t.out_dir / ENCODER,
                 "untrained_table": t.out_dir / UNTRAINED}
        row = {"spec": t.spec, "run_name": t.run_name, "label": t.label, "steps": outcome["steps"],
               "wall_s": outcome["wall_s"], "n_tasks": outcome["n_tasks"],
               "config": json.dumps(to_plain(t.config), sort_keys=True),
               # Under PBT: the config the encoder ended under and the segments that led to it.
               "final_config": json.dumps(outcome["final_config"], sort_keys=True),
               "schedule": json.dumps(outcome["schedule"]),
               **{k: str(v) for k, v in paths.items()}, **outcome["final"]}
        line = f"{outcome['steps']} meta-steps  {outcome['wall_s']:.1f}s  -> {t.out_dir}"
        # The last step's metrics were logged with its progress; only the totals are new.
        return Completed(row, {"perf/wall_s": outcome["wall_s"]}, outcome["steps"], line, exported)
