"""The one place taskdisc touches Ray Tune's private state: its controller forgetting ended trials.

Tune's controller keeps every trial of an experiment: the Trial in its list (looped over at every step
and scheduling decision), in its status sets, and its JSON state (~40 KB here) for the experiment
snapshots, which write all of them each time. For a sweep of 10,000 trials that is memory and snapshot
time growing with the sweep, for state no one reads: a sweep resumes from its record, and an ended
trial's results are in the record and MLflow. Tune has no public way to drop an ended trial, so this
module removes it from the attributes named in CONTROLLER_STATE. `tests/test_tune_internals.py` checks
them against the installed Tune: a Ray release that renames them fails it loudly, and at run time
the sweep says once that its controller keeps every trial, and goes on.
"""
from __future__ import annotations

import warnings

from ray.tune.experiment import Trial

# Tune's TuneController, as of the Ray versions setup.cfg admits: name -> the type it holds
CONTROLLER_STATE = {"_trials": list, "_stopped_trials": set, "_failed_trials": set, "_trials_to_cache": set,
                    "_trial_metadata": dict}
ENDED = (Trial.TERMINATED, Trial.ERROR)


def missing_state(tune_controller) -> list[str]:
    """The CONTROLLER_STATE attributes `tune_controller` lacks or holds in another type."""
    return [name for name, kind in CONTROLLER_STATE.items()
            if not isinstance(getattr(tune_controller, name, None), kind)]


class ForgetsEnded:
    """Mixin for a Tune scheduler (the one plug-in Tune hands its controller itself): the controller forgets
    a trial at a later trial's end, once Tune has marked it ended; the last few trials of a sweep stay."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ending: list = []
        self.warned = False

    def on_trial_complete(self, tune_controller, trial, result):
        super().on_trial_complete(tune_controller, trial, result)
        self._ends(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial):
        super().on_trial_remove(tune_controller, trial)
        self._ends(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial):
        super().on_trial_error(tune_controller, trial)
        self._ends(tune_controller, trial)

    def _ends(self, tune_controller, trial) -> None:
        # Never the trial Tune is handling now: a trial being retried is ERROR until Tune requeues it, right
        # after this hook, and Tune asserts it still finds it in its ERROR set then.
        gone = {t for t in self.ending if t.status in ENDED and t is not trial}
        self.ending = [t for t in self.ending if t not in gone and t is not trial] + [trial]
        if gone:
            self.forget(tune_controller, gone)

    def forget(self, tune_controller, trials: set) -> None:
        missing = missing_state(tune_controller)
        if missing:
            if not self.warned:
                self.warned = True
                warnings.warn(f"this Ray Tune's controller has no {', '.join(missing)}: it keeps every ended "
                              "trial in memory (install a Ray version that setup.cfg admits)", stacklevel=2)
            return
        tune_controller._trials[:] = [t for t in tune_controller._trials if t not in trials]
        for held in (tune_controller._stopped_trials, tune_controller._failed_trials,
                     tune_controller._trials_to_cache):
            held.difference_update(trials)
        for t in trials:
            tune_controller._trial_metadata.pop(t.trial_id, None)
