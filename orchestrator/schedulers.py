"""Tune's trial schedulers as taskdisc runs them: each forgets ended trials, and PBT keeps identities.

Forgetting ended trials needs Tune's private controller state: that is `tune_internals.py`, alone.
Everything here is Tune's public scheduler API (its constructor arguments and TrialScheduler hooks).
"""
from __future__ import annotations

import dataclasses

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

from orchestrator.tune_internals import ForgetsEnded


class LeanFIFO(ForgetsEnded, FIFOScheduler):
    """Tune's default scheduler (trials in order, each to its end), forgetting ended trials."""


class LeanASHA(ForgetsEnded, ASHAScheduler):
    """Tune's ASHA (stops trials whose metric trails at a rung), forgetting ended trials; its rungs
    keep each trial's metric, what its decisions need."""


class KeyedPBT(PopulationBasedTraining):
    """Tune's PBT, except that an exploiting trial keeps its own identity. Tune's exploit copies the
    better trial's whole config; here only `trial.tuned` (the perturbed hyperparameters) is kept from
    it, the rest of `trial` (start config, key, run name) goes back to the exploiting trial's own, so each
    trial is still recorded once under its own key. Done in the public hooks: a trial's own config is
    kept when Tune adds it, and restored right after a result's decision, while an exploited trial is
    paused and before it runs again. A population keeps its ended trials: exploits read them."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.own: dict = {}  # Trial -> its own `trial` config, as added

    def on_trial_add(self, tune_controller, trial):
        super().on_trial_add(tune_controller, trial)
        self.own.setdefault(trial, trial.config["trial"])

    def on_trial_result(self, tune_controller, trial, result):
        decision = super().on_trial_result(tune_controller, trial, result)
        for t, own in self.own.items():  # synchronous PBT may exploit trials other than this one
            now = t.config["trial"]
            if {**now, "tuned": own["tuned"]} != own:
                t.set_config({**t.config, "trial": {**own, "tuned": now["tuned"]}})
        return decision


@dataclasses.dataclass(frozen=True)
class SchedulerKind:
    cls: type  # Tune's scheduler class, built from a spec's scheduler_config()
    # Trials restore from each other's checkpoints (PBT's exploit): every checkpoint is kept until the
    # sweep ends, and the trials go to Tune up front as its own grid (it refuses a search algorithm).
    shares_checkpoints: bool


# Names a spec's scheduler_config() gives; None (every trial to its end) is LeanFIFO.
SCHEDULERS = {"asha": SchedulerKind(LeanASHA, False), "pbt": SchedulerKind(KeyedPBT, True)}
DEFAULT = SchedulerKind(LeanFIFO, False)
