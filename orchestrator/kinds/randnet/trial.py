"""The random-network split trial: stream the training images through a random network, `batches_per_step`
batches per Tune step (wraps trainables.splits.RandomNetScorer), then export the split. The files
travel back with the result and the driver writes them into the sweep folder."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from trainables.data import load_image_folder
from trainables.discovery import write_table
from trainables.order import image_order
from trainables.splits import RandomNetScorer, split_summary
from trainables.splits.files import write_partition_csv, write_single_split, write_splits

from orchestrator.kinds.randnet.spec import PARTITION, RULE, SPLIT, TABLE, TARGET, RandnetTrial
from orchestrator.specs.io import to_plain
from orchestrator.trials.api import Completed, RunnerBase, TrialInfo, write_exports


class RandnetRunner(RunnerBase):
    def __init__(self, trial: RandnetTrial, device: str):
        self.trial = trial
        self.run = RandomNetScorer(trial.dataset.root, trial.config, device)
        self.device = self.run.device

    def image_order(self) -> str | None:
        """The order identity of the scored images, where they are the dataset's own (native size);
        decoding them all is fine there: a dataset of native-size images fits in memory."""
        if self.trial.config.image_size is not None:
            return None
        return image_order(load_image_folder(self.trial.dataset.root).train_x)

    def step(self) -> dict:
        return self.run.step()

    def outcome(self) -> dict:
        result = self.run.result()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            write_single_split(out / SPLIT, result.split)
            order = self.image_order()
            write_splits(out / TABLE, {0: [result.split]}, order)
            write_partition_csv(out / PARTITION, result.split, list(result.files))
            np.save(out / TARGET, np.array([result.target_classes], dtype=np.int64))
            write_table(result.rule.view(-1, 1), out / RULE, order)
            files = {p.name: p.read_bytes() for p in out.iterdir()}
        summary = split_summary(result.split, result.target, 2)
        return {"files": files, "summary": summary, "images": len(result.scores), "wall_s": self.run.wall_s,
                "target_classes": [result.classes[c] for c in result.target_classes]}


class RandnetAdapter:
    def inputs(self, trial: dict) -> list[str]:
        return []  # the images are read where the worker is: dataset.root must be reachable there

    def start(self, trial: dict, device: str, cache: dict, files: dict[str, str]) -> RandnetRunner:
        return RandnetRunner(RandnetTrial.from_config(trial), device)

    def describe(self, trial: dict) -> TrialInfo:
        t = RandnetTrial.from_config(trial)
        params = {"key": t.key, "dataset": t.dataset.name, "root": t.dataset.root,
                  **{f"randnet.{k}": v for k, v in to_plain(t.config).items()}}
        tags = {"arch": t.config.arch, "net_seed": str(t.config.net_seed), "grid_point": t.label or "-"}
        return TrialInfo(t.key, t.run_name, params, tags)

    def progress(self, result: dict):
        yield int(result["randnet/images"]), {k: v for k, v in result.items() if k.startswith("randnet/")}

    def note(self, trial: dict, result: dict) -> str:
        return (f"{result['randnet/images']} images scored ({result['randnet/fraction']:.0%}), "
                f"{result['randnet/images_per_s']:.0f} images/s")

    def complete(self, trial: dict, outcome: dict) -> Completed:
        t = RandnetTrial.from_config(trial)
        paths = write_exports(t.out_dir, outcome["files"])
        s = outcome["summary"]
        row = {"spec": t.spec, "run_name": t.run_name, "label": t.label, "images": outcome["images"],
               "wall_s": outcome["wall_s"], "config": json.dumps(to_plain(t.config), sort_keys=True),
               "target_classes": ",".join(outcome["target_classes"]),
               "train_size": int(s["split/train_size"]), "test_size": int(s["split/test_size"]),
               **{k: str(t.out_dir / name) for k, name in (("split", SPLIT), ("table", TABLE),
                                                             ("partition", PARTITION), ("target", TARGET),
                                                             ("rule", RULE))}}
        line = (f"{outcome['images']} images  train {row['train_size']} / test {row['test_size']}  target classes "
                f"{row['target_classes']}  {outcome['wall_s']:.1f}s  -> {t.out_dir}")
        return Completed(row, {**s, "perf/wall_s": outcome["wall_s"]}, outcome["images"], line, paths)
