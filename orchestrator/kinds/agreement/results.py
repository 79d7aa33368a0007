"""A sweep's results: summary per task set, the results table files, and the parent run's artifacts."""
from __future__ import annotations

import csv
import json
import math
import warnings
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.results.confidence import Estimate, difference, set_estimates, set_values, task_scores
from orchestrator.results.rank_agreement import agreement_lines, agreement_metrics
from orchestrator.specs.io import SpecError
from orchestrator.tracking.tags import PARENT

if TYPE_CHECKING:  # `taskdisc results` reads a record: no MLflow, torch or matplotlib to import for that
    from orchestrator.kinds.agreement.spec import AgreementSpec
    from orchestrator.tracking.sweep_log import SweepLog


def summarize(rows: list[dict], top: int = 5) -> str:
    """Per task set: trials, tasks, the mean over tasks of their mean AS with its 95% interval, the
    spread, min and max over tasks; then the `top` tasks by mean AS over their pairs (seeds); with
    several seeds, every task's mean AS and 95% interval and how alike the seeds rank the tasks."""
    rows, stopped = finished(rows)
    if not rows:
        return "no finished trials recorded"
    scores = task_scores(rows)
    sets = set_estimates(scores)
    trials = defaultdict(int)
    for s in scores:
        trials[s["group"]] += s["seeds"]
    lines = [f"{'tasks':<16}{'trials':>7}{'tasks':>7}{'mean AS':>9}  {'95% interval':<17}{'std':>7}{'min':>8}{'max':>8}"]
    for group, e in sets.items():
        values = [s["mean_as"] for s in scores if s["group"] == group]
        lines.append(f"{group:<16}{trials[group]:>7}{e.n:>7}{e.mean:>9.4f}  {_interval(e):<17}"
                     f"{_num(e.std):>7}{min(values):>8.4f}{max(values):>8.4f}")
    lines.append(f"top {min(top, len(scores))} tasks by mean AS over their pairs:")
    for s in sorted(scores, key=lambda s: -s["mean_as"])[:top]:
        spread = f" {_bounds(s['ci95_low'], s['ci95_high'])} (95%, {s['seeds']} seeds)" if s["seeds"] > 1 else ""
        lines.append(f"  {s['run_name'].split('__seed')[0]:<40} AS={s['mean_as']:.4f}{spread}")
    if any(s["seeds"] > 1 for s in scores):
        lines += task_lines(scores) + agreement_lines(rows)
    if stopped:
        lines.append(search_line(rows, stopped))
    return "\n".join(lines)


def finished(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(trials that ran to the end, trials a top-k search stopped early)."""
    return [r for r in rows if not r.get("stopped")], [r for r in rows if r.get("stopped")]


def search_line(rows: list[dict], stopped: list[dict]) -> str:
    """What a top-k search saved: epochs spent against every trial running to the end."""
    spent = sum(r["epochs"] for r in rows + stopped)
    full = max(json.loads(r["protocol"])["epochs"] for r in rows) * (len(rows) + len(stopped))
    return (f"search: {len(stopped)} of {len(rows) + len(stopped)} trials stopped early; {spent} epochs spent "
            f"of {full} for a full sweep ({full / spent:.2f}x fewer)")


def task_lines(scores: list[dict]) -> list[str]:
    """Every task's mean AS over its seeds with its 95% interval, per set, best first."""
    lines = ["per task: mean AS over seeds, 95% interval (Student t, within [0, 1])"]
    for s in sorted(scores, key=lambda s: (s["group"], -s["mean_as"])):
        name, interval = f"{s['group']}-{s['index']}", _bounds(s["ci95_low"], s["ci95_high"])
        lines.append(f"  {name:<32}{s['mean_as']:>8.4f}  {interval:<17} {s['seeds']} seeds")
    return lines


def compare_sets(rows: list[dict], a: str, b: str) -> str:
    """One line: set a's mean AS minus set b's, with Welch's 95% interval (tasks as samples)."""
    sets = set_values(task_scores(finished(rows)[0]))
    for name in (a, b):
        if name not in sets:
            raise SpecError(f"--compare {a} {b}: no task set {name!r} in this sweep; its sets: {', '.join(sets)}")
    d = difference(sets[a], sets[b])
    return (f"{a} - {b}: {d.mean:+.4f}, 95% interval {_interval(d)} "
            f"(Welch, {len(sets[a])} vs {len(sets[b])} tasks)")


def _num(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.4f}"


def _interval(e: Estimate) -> str:
    return _bounds(e.low, e.high)


def _bounds(low: float, high: float) -> str:
    return "- (one sample)" if math.isnan(low) else f"[{low:.4f}, {high:.4f}]"


def write_tables(rows: list[dict], scores: list[dict], out_dir: Path) -> list[Path]:
    """results.parquet (every field), agreement_table.csv (the authors' columns task_idx, task, as,
    then seed and protocol, the protocol point's identity, so no two rows look alike) and
    task_scores.csv (`scores`, from `task_scores(rows)`: per task and protocol point, seeds, mean AS,
    std and 95% interval)."""
    parquet, table_csv = out_dir / "results.parquet", out_dir / "agreement_table.csv"
    scores_csv = out_dir / "task_scores.csv"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    with open(scores_csv, "w", newline="") as f:
        w = csv.DictWriter(f, list(scores[0]))
        w.writeheader()
        w.writerows(scores)
    with open(table_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["task_idx", "task", "as", "seed", "protocol"])
        for r in sorted(rows, key=lambda r: (r["group"], r["index"], r["seed"], r["protocol_hash"])):
            w.writerow([r["index"], r["group"], r["agreement"], r["seed"], r["protocol_hash"]])
    return [parquet, table_csv, scores_csv]


def finish_sweep(spec: AgreementSpec, rows: list[dict], log: SweepLog, complete: bool) -> None:
    """Write the results table and figures into the sweep folder and onto the parent run."""
    from orchestrator.results.plots import agreement_figures
    out_dir = Path(spec.sweep_dir)
    rows, stopped = finished(rows)
    if stopped:
        log.metrics(PARENT, {"search/stopped_trials": len(stopped),
                             "search/epochs_spent": sum(r["epochs"] for r in rows + stopped)}, step=0)
    if rows:
        scores = task_scores(rows)
        log.artifacts(PARENT, write_tables(rows, scores, out_dir) + agreement_figures(rows, out_dir))
        log.artifacts(PARENT, task_pictures(spec, rows, out_dir / "tasks"), folder="tasks")
        for group, e in set_estimates(scores).items():
            log.metrics(PARENT, {f"sweep/{group}/mean_agreement": e.mean, f"sweep/{group}/tasks": e.n,
                                 f"sweep/{group}/ci95_low": e.low, f"sweep/{group}/ci95_high": e.high}, step=0)
        seeds = agreement_metrics(rows)  # several seeds: how alike they rank the tasks
        if seeds:
            log.metrics(PARENT, seeds, step=0)
        if spec.fidelity.on:
            log.artifacts(PARENT, fidelity_files(spec, rows, out_dir, log))
    log.finish(PARENT, failed=not complete)


def fidelity_files(spec: AgreementSpec, rows: list[dict], out_dir: Path, log: SweepLog) -> list[Path]:
    """The fidelity study's table, report and figure, and each candidate's numbers on the parent run."""
    from orchestrator.results.fidelity import fidelity_table
    from orchestrator.results.fidelity_files import metrics, write_fidelity
    points = {t.key: t.point for t in spec.iter_trials()}
    table = fidelity_table(rows, points, spec.fidelity.read_epochs)
    if not table:
        return []
    log.metrics(PARENT, metrics(table), step=0)
    return write_fidelity(table, [r for r in rows if points[r["key"]] == "reference"], out_dir)


def task_pictures(spec: AgreementSpec, rows: list[dict], out_dir: Path) -> list[Path]:
    """Pictures of each task set's top and bottom task, drawn on the spec's dataset (a warning, not a
    failed sweep, if the data is gone by now)."""
    from orchestrator.results.task_pictures import sweep_task_pictures
    from orchestrator.specs.preflight import driver_dataset
    from trainables.labels import TaskError
    try:
        return sweep_task_pictures(driver_dataset(spec.dataset, spec.name), rows, out_dir)
    except (SpecError, TaskError, ValueError) as e:
        warnings.warn(f"no task pictures for {spec.name}: {e}")
        return []
