"""The agreement trial: one pair on one task, one epoch per step (wraps trainables.AgreementRun)."""
from __future__ import annotations

import json

from trainables.agreement_score import AgreementRun, split_for
from trainables.discovery import table_of_test_images
from trainables.tasks import make_task

from orchestrator.trials.actor_data import actor_images
from orchestrator.kinds.agreement.spec import AgreementTrial
from orchestrator.specs.io import to_plain
from orchestrator.trials.api import Completed, RunnerBase, TaskInput, TrialInfo

PROGRESS_PREFIXES = ("train/", "eval/", "perf/", "data/")


class AgreementRunner(RunnerBase):
    def __init__(self, trial: AgreementTrial, device: str, cache: dict, files: dict[str, str]):
        dataset, train, test = actor_images(cache, trial.dataset, device, trial.protocol.channels_last)
        source = files.get(trial.source, trial.source)  # this actor's copy of the driver's file
        labels = make_task(trial.kind, trial.index, dataset, source, trial.num_classes)
        self.labels_digest = labels.digest()
        self.run = AgreementRun(train, test, labels, split_for(dataset, trial.protocol), trial.protocol, trial.seed)
        self.device = train.device

    def step(self) -> dict:
        return self.run.train_epoch()

    def outcome(self) -> dict:
        result = self.run.result()
        return {"result": result.to_dict(), "metrics": result.metrics(), "labels_digest": self.labels_digest}


def identity_row(trial: AgreementTrial) -> dict:
    """What every record row of an agreement trial says of the trial itself."""
    return {"key": trial.key, "spec": trial.spec, "run_name": trial.run_name, "group": trial.group,
            "kind": trial.kind, "index": trial.index, "seed": trial.seed, "protocol_hash": trial.protocol_hash}


def agreement_row(trial: AgreementTrial, result: dict) -> dict:
    """The record row of a finished agreement trial (`result` is AgreementResult.to_dict())."""
    row = {**identity_row(trial), "source": trial.source, "num_classes": trial.num_classes,
           "arch": trial.protocol.arch,
           "arch2": trial.protocol.archs[1], "width": trial.protocol.width,
           "protocol": json.dumps(to_plain(trial.protocol), sort_keys=True), "task": result["task"]}
    row.update({k: result[k] for k in ("agreement", "balance", "epochs", "wall_s", "images_per_s")})
    row["agreement_by_epoch"] = list(result["agreement_by_epoch"])
    for part in ("train_acc", "holdout_acc", "test_acc"):
        for i in range(2):
            row[f"{part}_{i}"] = float(result[part][i])
    return row


class AgreementAdapter:
    def inputs(self, trial: dict) -> list[str]:
        """The task source and, for a task table, its test-image sibling when there is one."""
        if not trial["source"]:
            return []
        sibling = table_of_test_images(trial["source"])
        return [trial["source"]] + ([str(sibling)] if sibling.is_file() else [])

    def start(self, trial: dict, device: str, cache: dict, files: dict[str, str]) -> AgreementRunner:
        return AgreementRunner(AgreementTrial.from_config(trial), device, cache, files)

    def describe(self, trial: dict) -> TrialInfo:
        t = AgreementTrial.from_config(trial)
        params = {"group": t.group, "kind": t.kind, "index": t.index, "seed": t.seed, "source": t.source,
                  "num_classes": t.num_classes, "key": t.key, "dataset": t.dataset.name,
                  **{f"protocol.{k}": v for k, v in to_plain(t.protocol).items()}}
        tags = {"task_kind": t.kind, "task_set": t.group, "task_index": str(t.index), "seed": str(t.seed),
                "arch": t.protocol.pair_name, "protocol": t.protocol_hash}
        return TrialInfo(t.key, t.run_name, params, tags)

    def progress(self, result: dict):
        yield int(result["epoch"]), {k: v for k, v in result.items() if k.startswith(PROGRESS_PREFIXES)}

    def note(self, trial: dict, result: dict) -> None:
        return None  # epochs are short: one line per finished trial is enough

    def stopped(self, trial: dict, result: dict) -> Completed:
        """A trial the search stopped early (`result`: its last epoch's)."""
        row = stopped_row(AgreementTrial.from_config(trial), result)
        line = f"stopped by the search after {row['epochs']} epochs: AS={row['agreement']:.4f}"
        return Completed(row, {"search/stopped_at_epoch": row["epochs"]}, row["epochs"], line)

    def complete(self, trial: dict, outcome: dict) -> Completed:
        r = outcome["result"]
        line = (f"AS={r['agreement']:.4f}  train_acc={min(r['train_acc']):.3f}  "
                f"holdout_acc={min(r['holdout_acc']):.3f}  epochs={r['epochs']}  {r['wall_s']:.1f}s")
        t = AgreementTrial.from_config(trial)
        return Completed(agreement_row(t, r), outcome["metrics"], r["epochs"], line,
                         inputs=[task_input(t, outcome["labels_digest"])])


def stopped_row(trial: AgreementTrial, result: dict) -> dict:
    """The record row of a trial a top-k search stopped: its agreement after its last epoch."""
    return {**identity_row(trial), "agreement": result["eval/agreement"], "epochs": int(result["epoch"]),
            "stopped": True}


def task_input(t: AgreementTrial, labels_digest: str) -> TaskInput:
    """The task's labels as the run's training data: runs on the same labelling share its digest."""
    where = t.source or f"{t.kind} task {t.index}"
    return TaskInput(f"{t.group}-{t.index}", labels_digest, f"{t.dataset.name}: {where}")
