"""How sure an agreement score is: per task over its pairs (seeds), per task set over its tasks, and
the difference between two task sets, each with a 95% Student-t interval kept inside the score's range.

scipy is imported inside the functions: `scipy.special` costs ~0.3 s, `scipy.stats` ~2 s, and a
`taskdisc results` of one-seed sweeps needs neither."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from statistics import variance

AS_RANGE = (0.0, 1.0)  # an agreement score is a fraction of held-out images
DIFF_RANGE = (-1.0, 1.0)  # the difference of two of them


def t975(df: float) -> float:
    """The two-sided 95% quantile of Student's t with `df` (possibly fractional) degrees of freedom."""
    if df < 1:
        return math.nan
    from scipy.special import stdtrit
    return float(stdtrit(df, 0.975))


@dataclass(frozen=True)
class Estimate:
    """Mean of `n` values with their sample standard deviation and a 95% interval of the mean
    (NaN spread and interval for a single value: one pair says nothing about seed noise)."""
    n: int
    mean: float
    std: float
    low: float
    high: float


def clip(low: float, high: float, bounds: tuple[float, float]) -> tuple[float, float]:
    """An interval cut to the range its quantity can take (a mean AS of 0.99 +- 0.03 is [0.96, 1])."""
    return max(low, bounds[0]), min(high, bounds[1])


def estimate(values: list[float], bounds: tuple[float, float] = AS_RANGE) -> Estimate:
    """The mean of `values` with its Student-t 95% interval, cut to `bounds`."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return Estimate(n, mean, math.nan, math.nan, math.nan)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t975(n - 1) * std / math.sqrt(n)
    return Estimate(n, mean, std, *clip(mean - half, mean + half, bounds))


def difference(a: list[float], b: list[float]) -> Estimate:
    """mean(a) - mean(b) with Welch's 95% interval (unequal variances, scipy's t-test), cut to [-1, 1];
    `n` is Welch's degrees of freedom, rounded, `std` the difference's standard error."""
    d = sum(a) / len(a) - sum(b) / len(b)
    if len(a) < 2 or len(b) < 2:
        return Estimate(0, d, math.nan, math.nan, math.nan)
    va, vb = variance(a) / len(a), variance(b) / len(b)
    if va + vb == 0:
        return Estimate(len(a) + len(b) - 2, d, 0.0, d, d)
    from scipy.stats import ttest_ind
    test = ttest_ind(a, b, equal_var=False)
    ci = test.confidence_interval(0.95)
    return Estimate(round(float(test.df)), d, math.sqrt(va + vb), *clip(float(ci.low), float(ci.high), DIFF_RANGE))


def task_key(row: dict) -> tuple:
    """A task under one protocol point: its pairs (seeds) are the samples of its score."""
    return row["group"], row["index"], row["protocol_hash"]


def point_label(row: dict) -> str:
    """The protocol point in the run name ('bf16', 'epochs-3_lr-0.01'; '' for a single point)."""
    return row["run_name"].split("__seed", 1)[-1].partition("__")[2]


def task_scores(rows: list[dict]) -> list[dict]:
    """One row per task and protocol point: its pairs' mean AS, their spread and the 95% interval.
    Its set is the task set, with the protocol point where the sweep has several ('real/bf16')."""
    by_task: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        by_task[task_key(r)].append(r)
    out = []
    for (group, index, protocol), rs in sorted(by_task.items()):
        e = estimate([r["agreement"] for r in rs])
        label = point_label(rs[0])
        out.append({"group": f"{group}/{label}" if label else group, "index": index, "protocol_hash": protocol,
                    "run_name": rs[0]["run_name"],
                    "seeds": e.n, "mean_as": e.mean, "std_as": e.std, "ci95_low": e.low, "ci95_high": e.high})
    return out


def set_values(scores: list[dict]) -> dict[str, list[float]]:
    """Per task set: its tasks' mean AS (the samples of the set's score)."""
    by_set: dict[str, list[float]] = defaultdict(list)
    for s in scores:
        by_set[s["group"]].append(s["mean_as"])
    return dict(sorted(by_set.items()))


def set_estimates(scores: list[dict]) -> dict[str, Estimate]:
    """Per task set: the mean over its tasks of their mean AS, tasks as the samples."""
    return {group: estimate(values) for group, values in set_values(scores).items()}
