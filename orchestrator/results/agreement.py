"""A sweep's results: summary per task set, the results table files, and the parent run's artifacts."""
from __future__ import annotations

import csv
import warnings
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.results.plots import agreement_figures
from trainables.tasks import TaskError

from orchestrator.specs.agreement import SweepSpec
from orchestrator.specs.io import SpecError
from orchestrator.tracking.sweep_log import PARENT, SweepLog


def summarize(rows: list[dict], top: int = 5) -> str:
    """Per task set: count, mean, std, min and max AS, then the `top` highest-scoring tasks."""
    if not rows:
        return "no finished trials recorded"
    by_group: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_group[r["group"]].append(r)
    lines = [f"{'tasks':<16}{'trials':>7}{'mean AS':>10}{'std':>8}{'min':>8}{'max':>8}"]
    for group, rs in sorted(by_group.items()):
        a = [r["agreement"] for r in rs]
        mean = sum(a) / len(a)
        std = (sum((x - mean) ** 2 for x in a) / max(len(a) - 1, 1)) ** 0.5
        lines.append(f"{group:<16}{len(a):>7}{mean:>10.4f}{std:>8.4f}{min(a):>8.4f}{max(a):>8.4f}")
    lines.append(f"top {min(top, len(rows))} tasks by AS:")
    for r in sorted(rows, key=lambda r: -r["agreement"])[:top]:
        lines.append(f"  {r['run_name']:<48} AS={r['agreement']:.4f}  holdout_acc="
                     f"{min(r['holdout_acc_0'], r['holdout_acc_1']):.3f}")
    return "\n".join(lines)


def summarize_exports(rows: list[dict]) -> str:
    """One line per trial that exported files (an encoder, a random-network split): name, time, folder."""
    lines = []
    for r in sorted(rows, key=lambda r: r["run_name"]):
        folder = Path(next(v for k, v in r.items() if k in ("table", "split"))).parent
        sizes = f"  train {r['train_size']} / test {r['test_size']}" if "train_size" in r else ""
        lines.append(f"{r['run_name']:<48} {r['wall_s']:>8.1f}s{sizes}  -> {folder}")
    return "\n".join(lines)


def write_tables(rows: list[dict], out_dir: Path) -> list[Path]:
    """results.parquet (every field) and agreement_table.csv (the authors' columns task_idx, task, as,
    then seed and protocol, the protocol point's identity, so no two rows look alike)."""
    parquet, table_csv = out_dir / "results.parquet", out_dir / "agreement_table.csv"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    with open(table_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["task_idx", "task", "as", "seed", "protocol"])
        for r in sorted(rows, key=lambda r: (r["group"], r["index"], r["seed"], r["protocol_hash"])):
            w.writerow([r["index"], r["group"], r["agreement"], r["seed"], r["protocol_hash"]])
    return [parquet, table_csv]


def finish_sweep(spec: SweepSpec, rows: list[dict], log: SweepLog, complete: bool) -> None:
    """Write the results table and figures into the sweep folder and onto the parent run."""
    out_dir = Path(spec.sweep_dir)
    if rows:
        log.artifacts(PARENT, write_tables(rows, out_dir) + agreement_figures(rows, out_dir))
        log.artifacts(PARENT, task_pictures(spec, rows, out_dir / "tasks"), folder="tasks")
        for group in {r["group"] for r in rows}:
            a = [r["agreement"] for r in rows if r["group"] == group]
            log.metrics(PARENT, {f"sweep/{group}/mean_agreement": sum(a) / len(a),
                                 f"sweep/{group}/trials": len(a)}, step=0)
    log.finish(PARENT, failed=not complete)


def task_pictures(spec: SweepSpec, rows: list[dict], out_dir: Path) -> list[Path]:
    """Pictures of each task set's top and bottom task, drawn on the spec's dataset (a warning, not a
    failed sweep, if the data is gone by now)."""
    from orchestrator.results.task_pictures import sweep_task_pictures
    from orchestrator.specs.preflight import driver_dataset
    try:
        return sweep_task_pictures(driver_dataset(spec.dataset, spec.name), rows, out_dir)
    except (SpecError, TaskError, ValueError) as e:
        warnings.warn(f"no task pictures for {spec.name}: {e}")
        return []


def finish_exports(spec, rows: list[dict], log: SweepLog, complete: bool, kind: str) -> None:
    """Write `<kind>.parquet` (one row per exporting trial, e.g. per discovery encoder: config, final
    losses, export paths) onto the parent run."""
    if rows:
        path = Path(spec.sweep_dir) / f"{kind}.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
        log.artifacts(PARENT, [path])
    log.finish(PARENT, failed=not complete)
