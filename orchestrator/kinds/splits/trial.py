"""The split trial: one network (or pair) trained on a split's train part and scored on its test part,
one epoch per step (wraps trainables.splits.training). Its outcome carries sample images of both
parts per target class; the driver draws them into a figure on the trial's MLflow run."""
from __future__ import annotations

import json
import math
from pathlib import Path

from trainables.discovery import table_of_test_images
from trainables.splits import split_summary
from trainables.splits.training import sample_images, split_run, training_labels

from orchestrator.trials.actor_data import actor_images
from orchestrator.kinds.splits.build import build_split
from orchestrator.kinds.splits.spec import SplitTrial
from orchestrator.specs.io import to_plain
from orchestrator.trials.api import Completed, RunnerBase, TaskInput, TrialInfo

PROGRESS_PREFIXES = ("train/", "eval/", "perf/", "data/")


class SplitRunner(RunnerBase):
    def __init__(self, trial: SplitTrial, device: str, cache: dict, files: dict[str, str]):
        dataset, train, test = actor_images(cache, trial.dataset, device, trial.protocol.channels_last)
        split, target = build_split(trial, dataset, lambda p: files.get(p, p))
        labels = training_labels(dataset, target, trial.labels)
        self.labels = (labels.name, labels.digest())
        self.summary = split_summary(split, target.train, 2)
        self.samples = sample_images(dataset, split, target.train, seed=trial.seed).images
        self.run = split_run(train, test, split, labels, trial.protocol, trial.seed, trial.networks)
        self.device = train.device

    def step(self) -> dict:
        return self.run.train_epoch()

    def outcome(self) -> dict:
        result = self.run.result()
        return {"result": result.to_dict(), "metrics": {**result.metrics(), **self.summary},
                "summary": self.summary, "samples": {k: v.numpy() for k, v in self.samples.items()},
                "labels": self.labels}


def split_row(t: SplitTrial, result: dict, summary: dict) -> dict:
    """The record row: the split's identity and sizes, and accuracy on its test part (`holdout_acc`
    of the run) per network and averaged."""
    test_acc = [float(a) for a in result["holdout_acc"]]
    row = {"key": t.key, "spec": t.spec, "run_name": t.run_name, "group": t.group, "target": t.target_name,
           "target_kind": t.target_kind, "target_index": t.target, "split_kind": t.split_kind,
           "split_index": t.split_index, "rule_group": t.rule_group, "rule_source": t.rule_source, "file": t.file,
           "labels": t.labels, "networks": t.networks, "seed": t.seed, "protocol_hash": t.protocol_hash,
           "arch": t.protocol.arch, "protocol": json.dumps(to_plain(t.protocol), sort_keys=True),
           "train_size": int(summary["split/train_size"]), "test_size": int(summary["split/test_size"]),
           "train_balance": summary["split/train_class1_frac"], "test_balance": summary["split/test_class1_frac"],
           "test_acc": sum(test_acc) / len(test_acc), "train_acc": sum(result["train_acc"]) / len(test_acc),
           "agreement": result["agreement"], "epochs": result["epochs"], "wall_s": result["wall_s"]}
    for i, a in enumerate(test_acc):
        row[f"test_acc_{i}"] = a
    return row


class SplitAdapter:
    def inputs(self, trial: dict) -> list[str]:
        """Target and rule task files (with a table's test-image sibling) and the split file."""
        paths = [trial[k] for k in ("target_source", "rule_source", "file") if trial[k]]
        siblings = [str(table_of_test_images(p)) for p in paths if table_of_test_images(p).is_file()]
        return sorted(set(paths + siblings))

    def start(self, trial: dict, device: str, cache: dict, files: dict[str, str]) -> SplitRunner:
        return SplitRunner(SplitTrial.from_config(trial), device, cache, files)

    def describe(self, trial: dict) -> TrialInfo:
        t = SplitTrial.from_config(trial)
        params = {"target": t.target_name, "target_source": t.target_source, "split": f"{t.group}-{t.split_index}",
                  "rule_source": t.rule_source, "file": t.file, "labels": t.labels, "networks": t.networks,
                  "seed": t.seed, "key": t.key, "dataset": t.dataset.name,
                  **{f"protocol.{k}": v for k, v in to_plain(t.protocol).items()}}
        tags = {"target": t.target_name, "split_kind": t.split_kind, "split_set": t.group,
                "split_index": str(t.split_index), "labels": t.labels, "seed": str(t.seed), "arch": t.protocol.arch}
        return TrialInfo(t.key, t.run_name, params, tags)

    def progress(self, result: dict):
        yield int(result["epoch"]), {k: v for k, v in result.items() if k.startswith(PROGRESS_PREFIXES)}

    def note(self, trial: dict, result: dict) -> None:
        return None

    def complete(self, trial: dict, outcome: dict) -> Completed:
        t = SplitTrial.from_config(trial)
        r = outcome["result"]
        row = split_row(t, r, outcome["summary"])
        from orchestrator.results.plots import split_samples_figure  # driver side only: actors skip matplotlib
        figure = split_samples_figure(outcome["samples"], Path(t.sweep_dir) / "figures" / f"{t.key}.png",
                                      f"{t.run_name}: test acc {row['test_acc']:.3f}")
        agreement = "" if math.isnan(r["agreement"]) else f"  agreement={r['agreement']:.3f}"
        line = (f"train {row['train_size']} / test {row['test_size']}  train_acc={row['train_acc']:.3f}  "
                f"test_acc={row['test_acc']:.3f}{agreement}  {r['wall_s']:.1f}s")
        name, digest = outcome["labels"]
        return Completed(row, outcome["metrics"], r["epochs"], line, [figure],
                         [TaskInput(name, digest, f"{t.dataset.name}: {t.target_name}")])
