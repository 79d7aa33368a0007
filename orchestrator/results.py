"""A sweep's results: summary per task kind, the results table files, and the parent run's artifacts."""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .plots import agreement_histograms
from .spec import SweepSpec
from .tracking import Tracker


def summarize(rows: list[dict], top: int = 5) -> str:
    """Per task kind: count, mean, min and max AS, then the `top` highest-scoring tasks."""
    if not rows:
        return "no finished trials recorded"
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_kind[r["kind"]].append(r)
    lines = [f"{'kind':<12}{'trials':>7}{'mean AS':>10}{'min':>8}{'max':>8}"]
    for kind, rs in sorted(by_kind.items()):
        a = [r["agreement"] for r in rs]
        lines.append(f"{kind:<12}{len(a):>7}{sum(a) / len(a):>10.4f}{min(a):>8.4f}{max(a):>8.4f}")
    lines.append(f"top {min(top, len(rows))} tasks by AS:")
    for r in sorted(rows, key=lambda r: -r["agreement"])[:top]:
        lines.append(f"  {r['run_name']:<48} AS={r['agreement']:.4f}  holdout_acc="
                     f"{min(r['holdout_acc_0'], r['holdout_acc_1']):.3f}")
    return "\n".join(lines)


def write_tables(rows: list[dict], out_dir: Path) -> list[Path]:
    """results.parquet (every field) and agreement_table.csv (the authors' columns: task_idx, task, as)."""
    parquet, table_csv = out_dir / "results.parquet", out_dir / "agreement_table.csv"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    with open(table_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["task_idx", "task", "as"])
        for r in sorted(rows, key=lambda r: (r["kind"], r["index"], r["seed"])):
            w.writerow([r["index"], r["kind"], r["agreement"]])
    return [parquet, table_csv]


def finish_sweep(spec: SweepSpec, rows: list[dict], tracker: Tracker, parent_id: str, complete: bool) -> None:
    """Write the results table and figures into the sweep folder and onto the parent run."""
    out_dir = Path(spec.sweep_dir)
    if rows:
        tracker.log_artifacts(parent_id, write_tables(rows, out_dir) + agreement_histograms(rows, out_dir))
        kinds = {r["kind"] for r in rows}
        for kind in kinds:
            a = [r["agreement"] for r in rows if r["kind"] == kind]
            tracker.log_metrics(parent_id, {f"sweep/{kind}/mean_agreement": sum(a) / len(a),
                                            f"sweep/{kind}/trials": len(a)}, step=0)
    tracker.finish(parent_id, failed=not complete)
