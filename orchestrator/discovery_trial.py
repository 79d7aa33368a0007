"""The discovery trial: one encoder, `steps_per_report` meta-steps per Tune step
(wraps trainables.discovery.DiscoveryRun). At the end it exports the task tables (trained
and untrained encoder) and the encoder checkpoint into the sweep folder."""
from __future__ import annotations

import json
from pathlib import Path

from trainables.discovery import DiscoveryRun, save_encoder, table_of_test_images, write_table

from .actor_data import actor_images
from .discovery_spec import CSV, ENCODER, TABLE, UNTRAINED, DiscoveryTrialSpec
from .specio import to_plain
from .trial_api import Completed, TrialInfo


class DiscoveryRunner:
    def __init__(self, trial: DiscoveryTrialSpec, device: str, cache: dict):
        _, self.train, self.test = actor_images(cache, trial.dataset, device)
        self.trial = trial
        self.run = DiscoveryRun(self.train, self.test, trial.config)
        self.device = self.train.device
        self.last: dict = {}

    @property
    def done(self) -> bool:
        return self.run.done

    def step(self) -> dict:
        history = []
        for _ in range(self.trial.steps_per_report):
            if self.run.done:
                break
            history.append(self.run.step())
        self.last = history[-1] if history else self.last
        return {"step": self.run.steps, **self.last, "history": history}

    def outcome(self) -> dict:
        """Export the tasks of the trained encoder and of the same encoder before training."""
        out = self.trial.out_dir
        train, test = self.run.labels()  # calibrates the encoder's BatchNorm first
        paths = {"table": write_table(train.cpu(), out / TABLE), "csv": write_table(train.cpu(), out / CSV),
                 "encoder": save_encoder(self.run.encoder, self.trial.config, out / ENCODER)}
        write_table(test.cpu(), table_of_test_images(out / TABLE))
        untrained_train, untrained_test = DiscoveryRun(self.train, self.test, self.trial.config).labels()
        paths["untrained_table"] = write_table(untrained_train.cpu(), out / UNTRAINED)
        write_table(untrained_test.cpu(), table_of_test_images(out / UNTRAINED))
        final = {k: v for k, v in self.last.items() if k.startswith("discovery/") or k.startswith("eval/")}
        return {"paths": {k: str(v) for k, v in paths.items()}, "steps": self.run.steps, "final": final,
                "wall_s": self.run.wall_s, "n_tasks": int(train.shape[1])}

    def state_dict(self) -> dict:
        return self.run.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.run.load_state_dict(state)


class DiscoveryAdapter:
    def start(self, trial: dict, device: str, cache: dict) -> DiscoveryRunner:
        return DiscoveryRunner(DiscoveryTrialSpec.from_config(trial), device, cache)

    def describe(self, trial: dict) -> TrialInfo:
        t = DiscoveryTrialSpec.from_config(trial)
        params = {"key": t.key, "dataset": t.dataset.name, **{f"discovery.{k}": v for k, v in to_plain(t.config).items()}}
        return TrialInfo(t.key, t.run_name, params)

    def progress(self, result: dict):
        for m in result.get("history", []):
            yield int(m["step"]), {k: v for k, v in m.items() if k != "step"}

    def note(self, trial: dict, result: dict) -> str:
        t = DiscoveryTrialSpec.from_config(trial)
        return (f"step {result['step']}/{t.config.meta_steps}  agreement_loss="
                f"{result.get('discovery/agreement_loss', float('nan')):.4f}  uniformity_loss="
                f"{result.get('discovery/uniformity_loss', float('nan')):.3f}  balance="
                f"{result.get('discovery/balance', float('nan')):.3f}")

    def complete(self, trial: dict, outcome: dict) -> Completed:
        t = DiscoveryTrialSpec.from_config(trial)
        row = {"spec": t.spec, "run_name": t.run_name, "label": t.label, "steps": outcome["steps"],
               "wall_s": outcome["wall_s"], "n_tasks": outcome["n_tasks"],
               "config": json.dumps(to_plain(t.config), sort_keys=True), **outcome["paths"], **outcome["final"]}
        artifacts = [Path(outcome["paths"][k]) for k in ("table", "csv", "encoder", "untrained_table")]
        artifacts.append(Path(table_of_test_images(outcome["paths"]["table"])))
        line = f"{outcome['steps']} meta-steps  {outcome['wall_s']:.1f}s  -> {t.out_dir}"
        # The last step's metrics were logged with its progress; only the totals are new.
        return Completed(row, {"perf/wall_s": outcome["wall_s"]}, outcome["steps"], line, artifacts)
