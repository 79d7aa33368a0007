"""How well a cheaper protocol stands in for the reference: per candidate, over the study's tasks,
the rank correlation of task scores with the reference's, their mean and largest difference, the
real-minus-random separation it keeps, and its cost relative to the reference."""
from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from orchestrator.results.plots import _save, plt


def ranks(values: list[float]) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank (as Spearman's coefficient needs)."""
    a = np.asarray(values, dtype=float)
    order = a.argsort(kind="stable")
    r = np.empty(len(a))
    r[order] = np.arange(1, len(a) + 1)
    for v in np.unique(a):
        tied = a == v
        r[tied] = r[tied].mean()
    return r


def spearman(x: list[float], y: list[float]) -> float:
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def task_means(rows: list[dict], score=lambda r: r["agreement"]) -> dict[tuple, float]:
    """(group, index, kind) -> mean over seeds of `score`."""
    by_task: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        by_task[r["group"], r["index"], r["kind"]].append(score(r))
    return {task: sum(v) / len(v) for task, v in by_task.items()}


def separation(means: dict[tuple, float]) -> float:
    """Mean AS of real tasks minus that of random tasks (NaN without both kinds)."""
    real = [v for (_, _, kind), v in means.items() if kind == "real"]
    rand = [v for (_, _, kind), v in means.items() if kind == "random"]
    return sum(real) / len(real) - sum(rand) / len(rand) if real and rand else math.nan


def compare(reference: dict[tuple, float], candidate: dict[tuple, float], cost: float) -> dict:
    tasks = sorted(reference)
    ref, cand = [reference[t] for t in tasks], [candidate[t] for t in tasks]
    diff = [abs(a - b) for a, b in zip(ref, cand)]
    ref_sep = separation(reference)
    return {"tasks": len(tasks), "spearman": spearman(ref, cand), "mean_abs_diff": sum(diff) / len(diff),
            "max_abs_diff": max(diff), "separation": separation(candidate),
            "separation_kept": separation(candidate) / ref_sep if ref_sep else math.nan, "cost": cost}


def fidelity_table(rows: list[dict], points: dict[str, str], read_epochs: tuple[int, ...]) -> list[dict]:
    """One row per candidate. `points` maps each row's key to its protocol point's name ('reference',
    candidates); read-epoch candidates come from the reference rows' per-epoch agreement, their cost
    the fraction of the reference's epochs."""
    by_point: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_point[points[r["key"]]].append(r)
    reference = by_point.pop("reference", [])
    if not reference:
        return []
    ref_means, ref_wall = task_means(reference), sum(r["wall_s"] for r in reference)
    out = []
    epochs = max(r["epochs"] for r in reference)
    for e in read_epochs:
        means = task_means(reference, lambda r, e=e: r["agreement_by_epoch"][min(e, len(r["agreement_by_epoch"])) - 1])
        out.append({"candidate": f"epochs-{e} (read)", **compare(ref_means, means, e / epochs)})
    for name, rs in by_point.items():
        means = task_means(rs)
        if set(means) == set(ref_means):  # a candidate still missing tasks is left out until it has them all
            out.append({"candidate": name, **compare(ref_means, means, sum(r["wall_s"] for r in rs) / ref_wall)})
    return out + seed_noise(reference)


def seed_noise(reference: list[dict]) -> list[dict]:
    """The reference against itself: its first seed's scores against each other seed's. A one-pair candidate
    closer to the reference than this is as close as another pair of the reference itself would be."""
    seeds = sorted({r["seed"] for r in reference})
    first = task_means([r for r in reference if r["seed"] == seeds[0]])
    out = []
    for s in seeds[1:]:
        other = task_means([r for r in reference if r["seed"] == s])
        if set(other) == set(first):
            out.append({"candidate": f"reference seed {s} vs {seeds[0]}", **compare(first, other, 1.0)})
    return out


def report(table: list[dict]) -> str:
    lines = [f"{'candidate':<24}{'spearman':>9}{'mean|d|':>9}{'max|d|':>9}{'real-rand':>10}{'kept':>7}{'cost':>7}"]
    for r in sorted(table, key=lambda r: r["cost"]):
        lines.append(f"{r['candidate']:<24}{r['spearman']:>9.3f}{r['mean_abs_diff']:>9.4f}{r['max_abs_diff']:>9.4f}"
                     f"{r['separation']:>10.4f}{r['separation_kept']:>7.2f}{r['cost']:>7.2f}")
    return "\n".join(lines)


def write_fidelity(table: list[dict], reference_rows: list[dict], out_dir: Path) -> list[Path]:
    """fidelity.csv, fidelity.txt and fidelity.png (AS against epoch per task; the frontier)."""
    csv_path, txt_path = out_dir / "fidelity.csv", out_dir / "fidelity.txt"
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, list(table[0]))
        w.writeheader()
        w.writerows(table)
    txt_path.write_text(report(table) + "\n")
    return [csv_path, txt_path, fidelity_figure(table, reference_rows, out_dir / "fidelity.png")]


def fidelity_figure(table: list[dict], reference_rows: list[dict], path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    kinds = sorted({r["kind"] for r in reference_rows})
    for r in reference_rows:
        curve = r["agreement_by_epoch"]
        left.plot(range(1, len(curve) + 1), curve, color=f"C{kinds.index(r['kind'])}", alpha=0.5, lw=1)
    for i, kind in enumerate(kinds):
        left.plot([], [], color=f"C{i}", label=kind)
    left.set(xlabel="epoch", ylabel="held-out agreement", title="reference: AS against epoch, per task")
    left.legend(fontsize=7)
    for r in table:
        right.scatter(r["cost"], r["spearman"], color="C3" if "(read)" in r["candidate"] else "C0")
        right.annotate(r["candidate"], (r["cost"], r["spearman"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    right.axhline(0.95, color="gray", ls="--", lw=1)
    right.set(xlabel="cost relative to the reference", ylabel="Spearman rank correlation with the reference",
              title="fidelity against cost")
    return _save(fig, path)
