"""The pretraining trial: one SimCLR backbone, one epoch per Tune step (wraps trainables.ssl.SimCLRRun).
At the end the worker exports the backbone's state dict; it travels back with the result and the
driver writes it into the sweep folder, where discovery's follow-up reads it."""
from __future__ import annotations

import io
import json

import torch

from trainables.ssl import SimCLRRun, backbone_state

from orchestrator.specs.io import to_plain
from orchestrator.kinds.pretrain.spec import BACKBONE, PretrainTrial
from orchestrator.trials.actor_data import actor_images
from orchestrator.trials.api import Completed, RunnerBase, TrialInfo, write_exports


class PretrainRunner(RunnerBase):
    def __init__(self, trial: PretrainTrial, device: str, cache: dict):
        dataset, train, _ = actor_images(cache, trial.dataset, device)
        self.trial, self.device = trial, train.device
        self.run = SimCLRRun(dataset, trial.config, self.device)
        self.last: dict = {}

    def step(self) -> dict:
        self.last = self.run.step()
        return self.last

    def outcome(self) -> dict:
        buffer = io.BytesIO()
        torch.save(backbone_state(self.run.backbone), buffer)
        final = {k: v for k, v in self.last.items() if k.startswith(("pretrain/", "eval/"))}
        return {"files": {BACKBONE: buffer.getvalue()}, "epochs": self.run.epochs, "wall_s": self.run.wall_s,
                "final": final}


class PretrainAdapter:
    def inputs(self, trial: dict) -> list[str]:
        return []

    def start(self, trial: dict, device: str, cache: dict, files: dict[str, str]) -> PretrainRunner:
        return PretrainRunner(PretrainTrial.from_config(trial), device, cache)

    def describe(self, trial: dict) -> TrialInfo:
        t = PretrainTrial.from_config(trial)
        params = {"key": t.key, "dataset": t.dataset.name, **{f"pretrain.{k}": v for k, v in to_plain(t.config).items()}}
        tags = {"arch": t.config.arch, "seed": str(t.config.seed), "grid_point": t.label or "-"}
        return TrialInfo(t.key, t.run_name, params, tags)

    def progress(self, result: dict):
        yield int(result["epoch"]), {k: v for k, v in result.items() if k.startswith(("pretrain/", "eval/", "perf/"))}

    def note(self, trial: dict, result: dict) -> str:
        t = PretrainTrial.from_config(trial)
        return (f"epoch {result['epoch']}/{t.config.epochs}  loss={result['pretrain/loss']:.4f}  "
                f"knn_acc={result['eval/knn_acc']:.3f}")

    def complete(self, trial: dict, outcome: dict) -> Completed:
        t = PretrainTrial.from_config(trial)
        exported = write_exports(t.out_dir, outcome["files"])
        row = {"spec": t.spec, "run_name": t.run_name, "label": t.label, "arch": t.config.arch, "width": t.config.width,
               "epochs": outcome["epochs"], "wall_s": outcome["wall_s"], "backbone": str(t.out_dir / BACKBONE),
               "config": json.dumps(to_plain(t.config), sort_keys=True), **outcome["final"]}
        line = f"{outcome['epochs']} epochs  {outcome['wall_s']:.1f}s  -> {t.out_dir}"
        return Completed(row, {"perf/wall_s": outcome["wall_s"]}, outcome["epochs"], line, exported)
