"""How alike two rankings of the same tasks are, and how alike a sweep's seeds rank them.

Spearman's coefficient is scipy's (tied scores share their mean rank); its 95% interval is taken on
Fisher's z scale with the variance 1.06 / (n - 3) of Fieller, Hartley & Pearson (1957) for Spearman
over n tasks, so it stays inside [-1, 1]. A sweep with several seeds ranks its tasks once per seed:
- seed to seed: each pair of seeds' scores against each other (what a second run would reorder);
- leave one out: each seed's scores against the mean of the other seeds'. The reference's own is the
  ceiling of a fidelity study: a candidate's seed s against the same mean (seed s left out of it, so
  read-off epochs of the reference's own pairs are not compared with themselves) is built the same
  way, and is as good as the reference when it reaches that ceiling's interval.
"""
from __future__ import annotations

import math
import warnings
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from typing import Callable

from orchestrator.results.confidence import point_label

SPEARMAN_VAR = 1.06  # Fieller, Hartley & Pearson (1957): var(atanh(Spearman)) ~ 1.06 / (n - 3)

Task = tuple  # (group, index, kind)
Scores = dict  # task -> score


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation of paired values; NaN when one side is constant."""
    from scipy.stats import spearmanr
    if len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(x, y).statistic)


def fisher_interval(r: float, n: int) -> tuple[float, float]:
    """95% interval of a Spearman coefficient `r` over `n` tasks (NaN for n <= 3)."""
    if n <= 3 or math.isnan(r):
        return math.nan, math.nan
    from scipy.special import ndtri
    z = math.atanh(max(-1 + 1e-12, min(1 - 1e-12, r)))
    half = float(ndtri(0.975)) * math.sqrt(SPEARMAN_VAR / (n - 3))
    return math.tanh(z - half), math.tanh(z + half)


@dataclass(frozen=True)
class Agreement:
    """Spearman over `tasks` tasks: the mean of `values` (one per seed or pair of seeds), its 95% interval."""
    tasks: int
    spearman: float
    low: float
    high: float
    values: tuple[float, ...]


def agreement(pairs: list[tuple[Scores, Scores]], group: str | None = None) -> Agreement | None:
    """The mean Spearman of several pairs of rankings over their common tasks (those of `group` only, if
    given); None without a pair over at least 2 tasks."""
    values, tasks = [], 0
    for x, y in pairs:
        common = sorted(t for t in set(x) & set(y) if group is None or t[0] == group)
        if len(common) >= 2:
            values.append(spearman([x[t] for t in common], [y[t] for t in common]))
            tasks = len(common)
    if not values:
        return None
    r = sum(values) / len(values)
    return Agreement(tasks, r, *fisher_interval(r, tasks), tuple(values))


def seed_scores(rows: list[dict], score: Callable[[dict], float] = lambda r: r["agreement"]) -> dict[int, Scores]:
    """seed -> task -> `score` (the rows of one protocol point)."""
    out: dict[int, Scores] = defaultdict(dict)
    for r in rows:
        out[r["seed"]][r["group"], r["index"], r.get("kind", r["group"])] = score(r)
    return dict(sorted(out.items()))


def mean_scores(by_seed: dict[int, Scores], seeds=None) -> Scores:
    """task -> mean score over `seeds` (default all), for the tasks scored at every one of them."""
    seeds = list(by_seed if seeds is None else seeds)
    tasks = set.intersection(*(set(by_seed[s]) for s in seeds)) if seeds else set()
    return {t: sum(by_seed[s][t] for s in seeds) / len(seeds) for t in tasks}


def seed_to_seed(by_seed: dict[int, Scores], group: str | None = None) -> Agreement | None:
    """Every pair of seeds' rankings against each other; None with one seed."""
    return agreement([(by_seed[a], by_seed[b]) for a, b in combinations(by_seed, 2)], group)


def leave_one_out_pairs(reference: dict[int, Scores], candidate: dict[int, Scores] | None = None
                        ) -> list[tuple[Scores, Scores]]:
    """Per seed s of the reference: (candidate's scores at s (default the reference's), the reference's
    mean over its other seeds). Empty with one seed."""
    candidate = reference if candidate is None else candidate
    return [(candidate[s], mean_scores(reference, [o for o in reference if o != s]))
            for s in reference if s in candidate and len(reference) > 1]


def leave_one_out(reference: dict[int, Scores], candidate: dict[int, Scores] | None = None,
                  group: str | None = None) -> Agreement | None:
    return agreement(leave_one_out_pairs(reference, candidate), group)


def sweep_seed_agreement(rows: list[dict]) -> dict[str, dict[str, Agreement]]:
    """Per protocol point ('' for a single one): seed-to-seed agreement over all its tasks ('all') and
    within each task set; only points with several seeds."""
    by_point: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_point[point_label(r)].append(r)
    out = {}
    for point, rs in sorted(by_point.items()):
        by_seed = seed_scores(rs)
        overall = seed_to_seed(by_seed)
        if overall is None:
            continue
        groups = sorted({r["group"] for r in rs})
        within = {g: seed_to_seed(by_seed, g) for g in groups} if len(groups) > 1 else {}
        out[point] = {"all": overall, **{g: a for g, a in within.items() if a is not None}}
    return out


def agreement_lines(rows: list[dict]) -> list[str]:
    """The seed-to-seed lines of `taskdisc results` (none for a one-seed sweep)."""
    lines = []
    for point, scopes in sweep_seed_agreement(rows).items():
        a = scopes["all"]
        head = f"seed-to-seed Spearman{f' ({point})' if point else ''}, {len(a.values)} pairs of seeds:"
        parts = [f"{scope} {s.spearman:.3f} {_range(s)} ({s.tasks} tasks)" for scope, s in scopes.items()]
        lines.append(f"{head} " + "; ".join(parts))
    return lines


def _range(a: Agreement) -> str:
    return "[-]" if math.isnan(a.low) else f"[{a.low:.3f}, {a.high:.3f}]"


def agreement_metrics(rows: list[dict]) -> dict[str, float]:
    """The parent run's metrics: sweep/seed_spearman (per point: sweep/<point>/seed_spearman) with its
    interval, and within each task set."""
    out = {}
    for point, scopes in sweep_seed_agreement(rows).items():
        for scope, a in scopes.items():
            prefix = "/".join(p for p in ("sweep", point, "" if scope == "all" else scope) if p)
            out.update({f"{prefix}/seed_spearman": a.spearman, f"{prefix}/seed_spearman_ci95_low": a.low,
                        f"{prefix}/seed_spearman_ci95_high": a.high})
    return out
