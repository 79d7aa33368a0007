"""The one private Tune state taskdisc touches (`orchestrator/tune_internals.py`): checked against the installed
Tune, so that a Ray release that renames it fails here, loudly, rather than silently keeping every trial."""
from __future__ import annotations

import sys
from types import SimpleNamespace

import ray.cloudpickle
from ray import tune
from ray.tune.experiment import Trial

from orchestrator.schedulers import LeanFIFO
from orchestrator.tune_internals import CONTROLLER_STATE, ForgetsEnded, missing_state


class Watching(LeanFIFO):
    """LeanFIFO that notes, at each trial's end, what of Tune's controller state is missing and how many trials
    its list holds."""

    def __init__(self):
        super().__init__()
        self.missing, self.listed = [], []

    def on_trial_complete(self, tune_controller, trial, result):
        super().on_trial_complete(tune_controller, trial, result)
        self.missing.append(missing_state(tune_controller))
        self.listed.append(len(tune_controller._trials))


def quick(config):
    tune.report({"score": config["x"]})


ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import a test module


class FakeTrial:  # what the scheduler reads of a trial: its status and id (hashable, as Tune's are)
    def __init__(self, trial_id: str):
        self.status, self.trial_id = Trial.RUNNING, trial_id


def test_the_installed_tunes_controller_has_the_state_taskdisc_forgets(ray_address, tmp_path):
    watching = Watching()
    results = tune.Tuner(quick, param_space={"x": tune.grid_search(list(range(6)))},
                         tune_config=tune.TuneConfig(scheduler=watching, max_concurrent_trials=1),
                         run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0)).fit()
    assert len(results) <= 6 and watching.missing == [[]] * 6, (
        f"Tune's controller no longer has {watching.missing}: update orchestrator/tune_internals.py's "
        "CONTROLLER_STATE for this Ray, or drop the forgetting")
    assert watching.listed[-1] <= 2 < 6  # the ended trials went from its list, but the last few


def test_a_trial_tune_is_retrying_is_not_forgotten_under_it():
    """Tune calls a scheduler's on_trial_error while a retried trial is still ERROR, then asserts it finds it
    in its ERROR set (the AssertionError a full disk used to end in): that trial stays until it truly ends."""
    class Plain:
        def on_trial_error(self, tune_controller, trial):
            pass

        def on_trial_complete(self, tune_controller, trial, result):
            pass

    class Forgetting(ForgetsEnded, Plain):
        pass

    a, b = FakeTrial("a"), FakeTrial("b")
    controller = SimpleNamespace(_trials=[a, b], _stopped_trials=set(), _failed_trials=set(),
                                 _trials_to_cache=set(), _trial_metadata={"a": {}, "b": {}})
    assert set(vars(controller)) == set(CONTROLLER_STATE)
    scheduler = Forgetting()
    a.status = Trial.ERROR  # a's first failure: Tune retries it
    controller._failed_trials.add(a)
    scheduler.on_trial_error(controller, a)
    controller._failed_trials.discard(a)
    a.status = Trial.PENDING  # requeued
    a.status = Trial.ERROR  # its second failure, retried again
    controller._failed_trials.add(a)
    scheduler.on_trial_error(controller, a)
    assert a in controller._failed_trials and a in controller._trials  # still there for Tune's requeue
    b.status = Trial.TERMINATED  # another trial ends: now a (ended for good) goes
    scheduler.on_trial_complete(controller, b, {})
    assert a not in controller._trials and a not in controller._failed_trials and "a" not in controller._trial_metadata
    assert controller._trials == [b]
