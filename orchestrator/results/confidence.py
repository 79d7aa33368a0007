"""How sure an agreement score is: per task over its pairs (seeds), per task set over its tasks, and
the difference between two task sets, each with a 95% Student-t interval."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (linear between them for Welch's
# fractional ones); beyond 30, the Cornish-Fisher expansion below is within 0.0005 of the exact value.
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
Z975 = 1.959964


def t975(df: float) -> float:
    if df < 1:
        return math.nan
    if df <= len(T975):
        lo = int(df)
        hi = min(lo + 1, len(T975))
        return T975[lo - 1] + (df - lo) * (T975[hi - 1] - T975[lo - 1])
    z = Z975
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


@dataclass(frozen=True)
class Estimate:
    """Mean of `n` values with their sample standard deviation and a 95% interval of the mean
    (NaN spread and interval for a single value: one pair says nothing about seed noise)."""
    n: int
    mean: float
    std: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def estimate(values: list[float]) -> Estimate:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return Estimate(n, mean, math.nan, math.nan, math.nan)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t975(n - 1) * std / math.sqrt(n)
    return Estimate(n, mean, std, mean - half, mean + half)


def difference(a: Estimate, b: Estimate) -> Estimate:
    """a.mean - b.mean with Welch's 95% interval (unequal variances); n is Welch's degrees of freedom, rounded."""
    va, vb = a.std ** 2 / a.n, b.std ** 2 / b.n
    d = a.mean - b.mean
    if a.n < 2 or b.n < 2:
        return Estimate(0, d, math.nan, math.nan, math.nan)
    se = math.sqrt(va + vb)
    if se == 0:
        return Estimate(a.n + b.n - 2, d, 0.0, d, d)
    df = (va + vb) ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1))
    half = t975(df) * se
    return Estimate(round(df), d, se, d - half, d + half)


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


def set_estimates(scores: list[dict]) -> dict[str, Estimate]:
    """Per task set: the mean over its tasks of their mean AS, tasks as the samples."""
    by_set: dict[str, list[float]] = defaultdict(list)
    for s in scores:
        by_set[s["group"]].append(s["mean_as"])
    return {group: estimate(values) for group, values in sorted(by_set.items())}
