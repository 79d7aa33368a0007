"""Building a split trial's split and target from its spec, and checking every one before Ray starts.

The worker and the driver share `build_split`: the driver runs it for every distinct split of a
spec first (targets binary, rules of the dataset's size, split files well formed, both parts
non-empty), so bad input fails in one line before anything is written, never inside a trial.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from trainables.data import ImageDataset, load_dataset
from trainables.order import check_order, image_order
from trainables.splits import (SplitError, TrainTestSplit, adversarial_split, check_split, random_half_split,
                               random_split_like)
from trainables.splits.files import NO_TARGET, read_splits, write_splits
from trainables.labels import TaskError, TaskLabels
from trainables.tasks import make_task

from orchestrator.specs.task_sets import TaskSet
from orchestrator.specs.io import SpecError


def file_positions(path: str, targets: TaskSet) -> dict[int, tuple[int, int]]:
    """Target index -> (key in the split file, number of its splits)."""
    try:
        splits = read_splits(path)
    except SplitError as e:
        raise SpecError(f"splits.file: {e}") from None
    if set(splits) == {NO_TARGET}:
        if len(targets.indices) != 1:
            raise SpecError(f"splits.file: {path} holds one split with no target; name exactly one target "
                            "in splits.targets")
        return {targets.indices[0]: (NO_TARGET, 1)}
    missing = [t for t in targets.indices if t not in splits]
    if missing:
        raise SpecError(f"splits.file: {path} has no splits for target {missing[0]}; it holds targets "
                        f"{sorted(splits)}")
    return {t: (t, len(splits[t])) for t in targets.indices}


def _once(memo: dict | None, key: tuple, make: Callable):
    """`make()`, computed once per `key` when a memo is given (the driver builds every split of a spec)."""
    if memo is None:
        return make()
    if key not in memo:
        memo[key] = make()
    return memo[key]


def build_split(trial, dataset: ImageDataset, local: Callable[[str | None], str | None] = lambda p: p,
                memo: dict | None = None) -> tuple[TrainTestSplit, TaskLabels]:
    """The split and target labels of `trial` (a SplitTrial); `local` maps the driver's file
    paths to this process's copies; `memo` keeps tasks and split files read for earlier trials.
    Raises TaskError or SplitError."""
    def task(kind: str, index: int, source: str | None) -> TaskLabels:
        return _once(memo, ("task", kind, index, source),
                     lambda: make_task(kind, index, dataset, local(source), 2))

    target = task(trial.target_kind, trial.target, trial.target_source)
    n = len(dataset.train_y)
    if trial.split_kind == "half":
        split = random_half_split(n, seed=trial.split_index)
    elif trial.file_key is not None:
        split = _once(memo, ("file", trial.file), lambda: read_splits(local(trial.file), n))[trial.file_key][
            trial.split_index]
        check_order(local(trial.file), dataset.train_x, dataset.name, "training images")
    else:
        split = adversarial_split(target.train, task(trial.rule_kind, trial.split_index, trial.rule_source).train)
    if trial.split_kind == "random":
        split = random_split_like(split, n, seed=trial.split_index)
    return check_split(split, n, f"split {trial.group}-{trial.split_index} of target {trial.target_name}"), target


def export_splits(spec, out_dir) -> list:
    """Every split of `spec`, one file per split family in the authors' layout ({target index:
    [(train_ids, test_ids), ...]}, `<family>.torch`) and as a Parquet split table; returns the paths."""
    dataset = load_dataset(spec.dataset.name, spec.dataset.root, spec.dataset.download, spec.dataset.image_size)
    families: dict[str, dict[int, dict[int, TrainTestSplit]]] = {}
    memo: dict = {}
    for trial in spec.trials():
        family = families.setdefault(trial.group, {}).setdefault(trial.target, {})
        if trial.split_index not in family:
            family[trial.split_index] = build_split(trial, dataset, memo=memo)[0]
    paths = []
    for group, by_target in sorted(families.items()):
        splits = {t: [s for _, s in sorted(v.items())] for t, v in by_target.items()}
        paths += [write_splits(out_dir / f"{group}.torch", splits),
                  write_splits(out_dir / f"{group}.parquet", splits, image_order(dataset.train_x))]
    return paths


def check_splits(spec, dataset, origin: str) -> None:
    """SpecError if any split `spec` (a SplitSpec) trains on cannot be built on `dataset`."""
    try:
        trials = spec.trials()
    except SpecError as e:
        raise SpecError(f"{origin}: {e}") from None
    seen, memo = set(), {}
    for trial in trials:
        split_id = dataclasses.replace(trial, labels="", seed=0, protocol=spec.protocols[0], varying=())
        if split_id in seen:
            continue
        seen.add(split_id)
        try:
            build_split(trial, dataset, memo=memo)
        except (TaskError, SplitError, ValueError) as e:
            raise SpecError(f"{origin}: splits: {e}") from None
