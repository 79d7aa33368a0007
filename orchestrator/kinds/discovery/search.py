"""Searching discovery's hyperparameters with Tune: Population Based Training over the grid points.

The paper fixes uniformity_coef, task_temp and the two learning rates by hand (and the authors'
configs disagree on uniformity_coef: 25 in the README, 5 in the configs). With `search: {scheduler:
pbt}` the `discovery:` grid points are PBT's initial population: every `perturbation_interval`
meta-steps a trial in the worst `quantile_fraction` of the population copies the encoder and Adam
state of one in the best (exploit) and continues under its hyperparameters, each multiplied by one
of `perturbation_factors` or resampled from its range (explore). PBT runs asynchronously: each trial
decides against the others' latest objectives; with more trials than slots, a trial pauses at each
decision so the least-trained one can run (Tune's synchronous mode was seen to hang when a trial
finished while another waited at a decision).

The objective, `search/objective`, is reported at every quick evaluation, with or without a search:

    mean quick AS of the first quick_eval_tasks tasks
      - similarity_penalty * (2 * similarity - 1) - balance_penalty * (2 * balance - 1)

AS alone rewards degenerate task sets: copies of one easy task, or near-constant tasks (which two
networks agree on trivially). similarity (0.5 = independent-looking .. 1 = identical, a task and its
negation counting as the same) and balance (0.5 = balanced .. 1 = constant) are the probe-batch task
statistics of all tasks (trainables/discovery/stats.py); 2x - 1 maps each to 0 (ideal) .. 1
(degenerate), in the AS's own units, so a penalty of 1 makes a fully collapsed set cost as much as
the whole range of AS (0.5 .. 1) could gain.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from trainables.config import ConfigError, check, param

# The hyperparameters PBT may change mid-run: the ones a running encoder's state stays valid under.
TUNABLE = ("uniformity_coef", "task_temp", "inner_lr", "outer_lr")
# Fields a population may also vary: the initial weights, which an exploit replaces anyway.
START_ONLY = ("encoder_seed",)
SCHEDULER_NAMES = ("none", "pbt")
OBJECTIVE = "search/objective"


@dataclass(frozen=True)
class LogUniform:
    """A range PBT resamples from (log-uniformly: the ranges span decades); plain Python, no Ray."""
    low: float
    high: float

    def __call__(self) -> float:
        return self.low * (self.high / self.low) ** random.random()

    def clip(self, value: float) -> float:
        return min(max(value, self.low), self.high)


@dataclass(frozen=True)
class DiscoverySearch:
    scheduler: str = param("none", "none = every grid point runs to the end; pbt = Population Based Training "
                                   "with the grid points as its population", choices=SCHEDULER_NAMES)
    mutate: tuple[str, ...] = param(TUNABLE, "hyperparameters PBT perturbs (a subset of "
                                             f"{', '.join(TUNABLE)})")
    perturbation_interval: int = param(50, "meta-steps between PBT's exploit/explore decisions (a multiple "
                                           "of steps_per_report and of quick_eval_every)", ge=1)
    quantile_fraction: float = param(0.25, "fraction of the population that copies a trial of the best "
                                           "fraction at each decision", gt=0, le=0.5)
    resample_probability: float = param(0.25, "probability that explore resamples a hyperparameter from "
                                              "its range instead of multiplying it", ge=0, le=1)
    perturbation_factors: tuple[float, ...] = param((1.25, 0.8), "explore multiplies a hyperparameter by "
                                                                 "one of these (then clips it to its range)")
    uniformity_coef_range: tuple[float, ...] = param((0.1, 50.0), "[low, high] of uniformity_coef under PBT")
    task_temp_range: tuple[float, ...] = param((0.5, 20.0), "[low, high] of task_temp under PBT")
    inner_lr_range: tuple[float, ...] = param((0.001, 1.0), "[low, high] of inner_lr under PBT")
    outer_lr_range: tuple[float, ...] = param((1e-5, 0.03), "[low, high] of outer_lr under PBT")
    similarity_penalty: float = param(1.0, "objective weight of the tasks' pairwise similarity, in AS per "
                                           "unit of 2*similarity-1 (0 = identical-looking never costs)", ge=0)
    balance_penalty: float = param(1.0, "objective weight of the tasks' imbalance, in AS per unit of "
                                        "2*balance-1 (0 = constant tasks never cost)", ge=0)

    def __post_init__(self):
        check(self)
        bad = [m for m in self.mutate if m not in TUNABLE]
        if bad or not self.mutate:
            raise ConfigError(f"DiscoverySearch.mutate={list(self.mutate)!r} is invalid: expected a non-empty "
                              f"subset of {', '.join(TUNABLE)}")
        if any(f <= 0 for f in self.perturbation_factors) or not self.perturbation_factors:
            raise ConfigError(f"DiscoverySearch.perturbation_factors={list(self.perturbation_factors)!r} is "
                              "invalid: expected positive numbers")
        for name in TUNABLE:
            low_high = getattr(self, f"{name}_range")
            if len(low_high) != 2 or not 0 < low_high[0] < low_high[1]:
                raise ConfigError(f"DiscoverySearch.{name}_range={list(low_high)!r} is invalid: expected "
                                  "[low, high] with 0 < low < high")

    @property
    def on(self) -> bool:
        return self.scheduler != "none"

    def ranges(self) -> dict[str, LogUniform]:
        return {name: LogUniform(*getattr(self, f"{name}_range")) for name in self.mutate}

    def objective(self, metrics: dict) -> float | None:
        """The search objective from one meta-step's metrics; None unless it had a quick evaluation."""
        if "eval/agreement_mean" not in metrics:
            return None
        similarity = metrics.get("discovery/similarity", 0.5)  # one task: no pairs, nothing to penalise
        return (metrics["eval/agreement_mean"] - self.similarity_penalty * (2 * similarity - 1)
                - self.balance_penalty * (2 * metrics["discovery/balance"] - 1))

    def check_population(self, configs: tuple, steps_per_report: int, concurrency: int | None) -> None:
        """The grid points must make a population PBT can run: raises ConfigError naming the key."""
        if not self.on:
            return
        if len(configs) < 2:
            raise ConfigError("search.scheduler=pbt needs a population: give the discovery grid at least 2 "
                              "points (e.g. uniformity_coef: [1, 5])")
        if concurrency is not None and concurrency < len(configs):
            raise ConfigError(f"concurrency={concurrency} is invalid with search.scheduler=pbt: the "
                              f"{len(configs)} trials of the population must all be live (they take turns "
                              "on the resources); use null")
        fixed = [f.name for f in dataclasses.fields(configs[0]) if f.name not in self.mutate + START_ONLY
                 and len({getattr(c, f.name) for c in configs}) > 1]
        if fixed:
            raise ConfigError(f"discovery.{fixed[0]} varies across the population, but PBT copies encoders "
                              f"between its trials: vary only {', '.join(self.mutate + START_ONLY)}")
        c = configs[0]
        if c.quick_eval_every is None:
            raise ConfigError("search.scheduler=pbt ranks trials by quick evaluations: set "
                              "discovery.quick_eval_every")
        for name, of in (("steps_per_report", steps_per_report), ("discovery.quick_eval_every", c.quick_eval_every)):
            if self.perturbation_interval % of:
                raise ConfigError(f"search.perturbation_interval={self.perturbation_interval} is invalid: "
                                  f"expected a multiple of {name}={of} (decisions need a fresh objective)")
        if self.perturbation_interval >= c.meta_steps:
            raise ConfigError(f"search.perturbation_interval={self.perturbation_interval} is invalid: expected "
                              f"fewer than discovery.meta_steps={c.meta_steps}")
        for config in configs:
            for name, r in self.ranges().items():
                if r.clip(getattr(config, name)) != getattr(config, name):
                    raise ConfigError(f"discovery.{name}={getattr(config, name)} is outside "
                                      f"search.{name}_range=[{r.low}, {r.high}]; widen the range")

    def explore(self, config: dict) -> dict:
        """PBT's explore step ends here: keep every perturbed value inside its range."""
        tuned = config["trial"]["tuned"]
        for name, r in self.ranges().items():
            tuned[name] = r.clip(tuned[name])
        return config

    def scheduler_config(self) -> tuple[str, dict] | None:
        """(registry name, keyword arguments) of Tune's scheduler; None when off. The trial config's
        `trial.tuned` holds the hyperparameters PBT changes; meta-steps are its clock."""
        if not self.on:
            return None
        return "pbt", {"time_attr": "step", "metric": OBJECTIVE, "mode": "max",
                       "perturbation_interval": self.perturbation_interval,
                       "hyperparam_mutations": {"trial": {"tuned": self.ranges()}},
                       "quantile_fraction": self.quantile_fraction,
                       "resample_probability": self.resample_probability,
                       "perturbation_factors": self.perturbation_factors, "custom_explore_fn": self.explore}
