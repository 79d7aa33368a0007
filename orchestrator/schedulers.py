"""Tune's trial schedulers as taskdisc runs them: each forgets ended trials, and PBT keeps identities.

Tune's controller keeps every trial of an experiment: the Trial in its list (looped over at every
step and scheduling decision) and its JSON state (~40 KB here) for the experiment snapshots, which
write all of them each time. For a sweep of 10,000 trials that is memory and snapshot time growing
with the sweep, for state no one reads: a sweep resumes from its record, and an ended trial's
results are in the record and MLflow. A scheduler is the one plug-in Tune hands its controller.
"""
from __future__ import annotations

import dataclasses

from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

ENDED = (Trial.TERMINATED, Trial.ERROR)


class ForgetsEnded:
    """Mixin for a Tune scheduler: the controller forgets a trial (its list entry, status set, snapshot
    cache and cache queue) at the next trial's end, once Tune has marked it ended; the last few trials of a
    sweep stay. Tune hands its controller itself to these hooks (its scheduling decisions get a
    restricted view). A Tune without those attributes keeps its trials, and nothing else changes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ending: list = []

    def on_trial_complete(self, tune_controller, trial, result):
        super().on_trial_complete(tune_controller, trial, result)
        self._ends(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial):
        super().on_trial_remove(tune_controller, trial)
        self._ends(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial):
        super().on_trial_error(tune_controller, trial)
        self._ends(tune_controller, trial)  # a retried trial comes back pending: forgotten only once ended

    def _ends(self, tune_controller, trial) -> None:
        gone = {t for t in self.ending if t.status in ENDED}
        self.ending = [t for t in self.ending if t not in gone and t is not trial] + [trial]
        if gone:
            forget(tune_controller, gone)


def forget(tune_controller, trials: set) -> None:
    listed = getattr(tune_controller, "_trials", None)
    if isinstance(listed, list):
        listed[:] = [t for t in listed if t not in trials]
    for name in ("_stopped_trials", "_failed_trials", "_trials_to_cache"):  # by status; snapshot queue
        held = getattr(tune_controller, name, None)
        if isinstance(held, set):
            held.difference_update(trials)
    metadata = getattr(tune_controller, "_trial_metadata", None)
    if isinstance(metadata, dict):
        for t in trials:
            metadata.pop(t.trial_id, None)


class LeanFIFO(ForgetsEnded, FIFOScheduler):
    """Tune's default scheduler (trials in order, each to its end), forgetting ended trials."""


class LeanASHA(ForgetsEnded, ASHAScheduler):
    """Tune's ASHA (stops trials whose metric trails at a rung), forgetting ended trials; its rungs
    keep each trial's metric, what its decisions need."""


class KeyedPBT(PopulationBasedTraining):
    """Tune's PBT, except that an exploiting trial keeps its own identity. Tune's exploit copies the
    better trial's whole config; here only `trial.tuned` (the perturbed hyperparameters) comes from
    it, the rest of `trial` (start config, key, run name) stays the exploiting trial's, so each trial
    is still recorded once under its own key. A population keeps its ended trials: exploits read them."""

    def _get_new_config(self, trial, trial_to_clone):
        config, operations = super()._get_new_config(trial, trial_to_clone)
        return {**config, "trial": {**trial.config["trial"], "tuned": config["trial"]["tuned"]}}, operations


@dataclasses.dataclass(frozen=True)
class SchedulerKind:
    cls: type  # Tune's scheduler class, built from a spec's scheduler_config()
    # Trials restore from each other's checkpoints (PBT's exploit): every checkpoint is kept until the
    # sweep ends, and the trials go to Tune up front as its own grid (it refuses a search algorithm).
    shares_checkpoints: bool


# Names a spec's scheduler_config() gives; None (every trial to its end) is LeanFIFO.
SCHEDULERS = {"asha": SchedulerKind(LeanASHA, False), "pbt": SchedulerKind(KeyedPBT, True)}
DEFAULT = SchedulerKind(LeanFIFO, False)
