"""How well a cheaper protocol stands in for the reference: per candidate, over the study's tasks, the
rank correlation of its task scores with the reference's mean over seeds, their mean and largest
difference, the real-minus-random separation it keeps, its cost relative to the reference, and
whether it is as good as the reference, judged against the reference's own seed-to-seed agreement.

With several seeds, a candidate's seed s is compared with the reference's mean over its other seeds
(`spearman`), and so is the reference's own seed s: the ceiling. A candidate is as good as the
reference (`as_good`) when its Spearman reaches the ceiling's 95% interval. With one seed there is no
ceiling: `spearman` is candidate against reference and `as_good` is None."""
from __future__ import annotations

import math
from collections import defaultdict

from orchestrator.results.rank_agreement import (Agreement, Scores, leave_one_out, mean_scores, seed_scores,
                                                 seed_to_seed, spearman)

CEILING = "reference (seed vs rest)"
CHEAP = 3.0  # how many times cheaper a candidate must be to be worth a preset


def separation(means: Scores) -> float:
    """Mean AS of real tasks minus that of random tasks (NaN without both kinds)."""
    real = [v for (_, _, kind), v in means.items() if kind == "real"]
    rand = [v for (_, _, kind), v in means.items() if kind == "random"]
    return sum(real) / len(real) - sum(rand) / len(rand) if real and rand else math.nan


def _spearman_of(x: Scores, y: Scores) -> float:
    tasks = sorted(x)
    return spearman([x[t] for t in tasks], [y[t] for t in tasks])


def compare(reference: dict[int, Scores], candidate: dict[int, Scores], cost: float,
            ceiling: Agreement | None) -> dict:
    """One candidate (seed -> task -> score) against the reference (the same)."""
    ref, cand = mean_scores(reference), mean_scores(candidate)
    tasks = sorted(ref)
    diff = [abs(ref[t] - cand[t]) for t in tasks]
    loo = leave_one_out(reference, candidate) if ceiling else None
    judged = loo.spearman if loo else _spearman_of(ref, cand)
    ref_sep = separation(ref)
    row = {"tasks": len(tasks), "seeds": len(candidate), "spearman": judged, "spearman_means": _spearman_of(ref, cand)}
    for group in sorted({t[0] for t in tasks}):
        a = leave_one_out(reference, candidate, group) if ceiling else None
        row[f"spearman_{group}"] = a.spearman if a else _spearman_of(
            *({t: v for t, v in s.items() if t[0] == group} for s in (ref, cand)))
    return {**row, "mean_abs_diff": sum(diff) / len(diff), "max_abs_diff": max(diff),
            "separation": separation(cand), "separation_kept": separation(cand) / ref_sep if ref_sep else math.nan,
            "cost": cost, "as_good": None if ceiling is None else bool(judged >= ceiling.low)}


def ceiling_row(reference: dict[int, Scores]) -> dict | None:
    """The reference's own seeds against the mean of its others: the ceiling, with its 95% interval
    (`ci95_low`, `ci95_high`) and the plain seed-to-seed agreement (`seed_to_seed`, every pair of seeds)."""
    ceiling = leave_one_out(reference)
    if ceiling is None:
        return None
    ref = mean_scores(reference)
    rests = [(reference[s], mean_scores(reference, [o for o in reference if o != s])) for s in reference]
    diff = [abs(x[t] - rest[t]) for x, rest in rests for t in ref]
    row = {"candidate": CEILING, "tasks": ceiling.tasks, "seeds": len(reference), "spearman": ceiling.spearman,
           "spearman_means": math.nan}
    for group in sorted({t[0] for t in ref}):
        row[f"spearman_{group}"] = leave_one_out(reference, group=group).spearman
    pairs = seed_to_seed(reference)
    return {**row, "mean_abs_diff": sum(diff) / len(diff), "max_abs_diff": max(diff),
            "separation": separation(ref), "separation_kept": 1.0, "cost": 1.0, "as_good": True,
            "ci95_low": ceiling.low, "ci95_high": ceiling.high, "seed_to_seed": pairs.spearman,
            "seed_to_seed_low": pairs.low, "seed_to_seed_high": pairs.high}


def fidelity_table(rows: list[dict], points: dict[str, str], read_epochs: tuple[int, ...]) -> list[dict]:
    """One row per candidate, then the ceiling (with several seeds). `points` maps each row's key to its
    protocol point's name ('reference', candidates); read-epoch candidates come from the reference rows'
    per-epoch agreement, their cost the fraction of the reference's epochs."""
    by_point: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_point[points[r["key"]]].append(r)
    reference_rows = by_point.pop("reference", [])
    if not reference_rows:
        return []
    reference = seed_scores(reference_rows)
    ceiling = leave_one_out(reference)
    ref_tasks, ref_wall = set(mean_scores(reference)), sum(r["wall_s"] for r in reference_rows)
    out = []
    epochs = max(r["epochs"] for r in reference_rows)
    for e in read_epochs:
        read = seed_scores(reference_rows, lambda r, e=e: r["agreement_by_epoch"][min(e, len(r["agreement_by_epoch"])) - 1])
        out.append({"candidate": f"epochs-{e} (read)", **compare(reference, read, e / epochs, ceiling)})
    for name, rs in by_point.items():
        candidate = seed_scores(rs)
        # a candidate still missing tasks or seeds is left out until it has them all
        if set(mean_scores(candidate)) == ref_tasks and set(candidate) == set(reference):
            cost = sum(r["wall_s"] for r in rs) / ref_wall
            out.append({"candidate": name, **compare(reference, candidate, cost, ceiling)})
    top = ceiling_row(reference)
    return out + ([top] if top else [])


def frontier(table: list[dict], cheap: float = CHEAP) -> str:
    """One line: the candidate at least `cheap` times cheaper that agrees best with the reference, and
    whether it is as good as the reference."""
    top = next((r for r in table if r["candidate"] == CEILING), None)
    cheap_rows = [r for r in table if r["candidate"] != CEILING and r["cost"] <= 1 / cheap]
    if not cheap_rows:
        return f"no candidate is {cheap:g}x cheaper than the reference"
    best = max(cheap_rows, key=lambda r: r["spearman"])
    line = (f"best candidate >= {cheap:g}x cheaper: {best['candidate']} ({1 / best['cost']:.1f}x cheaper), "
            f"Spearman {best['spearman']:.3f}")
    if top is None:
        return line + " (one seed: no ceiling to judge it against)"
    verdict = "as good as the reference" if best["as_good"] else "not as good as the reference"
    return line + f" against the ceiling's interval from {top['ci95_low']:.3f}: {verdict}"
