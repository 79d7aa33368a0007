"""A split sweep's results: test accuracy per target and split family, its table and figure."""
from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.tracking.tags import PARENT

if TYPE_CHECKING:
    from orchestrator.tracking.sweep_log import SweepLog

TABLE_COLUMNS = ("target", "labels", "group", "split_index", "seed", "train_size", "test_size", "test_acc",
                 "agreement")


def is_split_record(rows: list[dict]) -> bool:
    return bool(rows) and "split_kind" in rows[0]


def _stats(values: list[float]) -> tuple[float, float, float, float]:
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5
    return mean, std, min(values), max(values)


def _label(labels: str) -> str:
    return "10-way" if labels == "classes" else "target"


def grouped(rows: list[dict], by: tuple[str, ...]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        out[tuple(r[k] for k in by)].append(r)
    return dict(sorted(out.items()))


def summarize_splits(rows: list[dict], top: int | None = None) -> str:
    """Per target, label set and split family: trials, mean/std/min/max test accuracy, mean agreement
    of pairs; then the same per family over all targets (every one: `top` does not apply)."""
    head = f"{'target':<12}{'labels':<8}{'split':<18}{'trials':>7}{'test acc':>10}{'std':>8}{'min':>8}{'max':>8}" \
           f"{'mean train/test':>22}{'agree':>8}"
    lines = [head]
    for by in (("target", "labels", "group"), ("labels", "group")):
        for key, rs in grouped(rows, by).items():
            mean, std, lo, hi = _stats([r["test_acc"] for r in rs])
            target, labels, group = key if len(key) == 3 else ("all", *key)
            sizes = f"{_mean(rs, 'train_size'):.0f}/{_mean(rs, 'test_size'):.0f}"
            agree = [r["agreement"] for r in rs if not math.isnan(r["agreement"])]
            lines.append(f"{target:<12}{_label(labels):<8}{group:<18}{len(rs):>7}{mean:>10.4f}{std:>8.4f}"
                         f"{lo:>8.4f}{hi:>8.4f}{sizes:>22}" + (f"{sum(agree) / len(agree):>8.3f}" if agree else ""))
        lines.append("")
    return "\n".join(lines).rstrip()


def _mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


def write_split_tables(rows: list[dict], out_dir: Path) -> list[Path]:
    """split_results.parquet (every field) and split_table.csv (one line per trial)."""
    parquet, table_csv = out_dir / "split_results.parquet", out_dir / "split_table.csv"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    with open(table_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(TABLE_COLUMNS)
        for r in sorted(rows, key=lambda r: tuple(str(r[k]) for k in TABLE_COLUMNS[:5])):
            w.writerow([r[k] for k in TABLE_COLUMNS])
    return [parquet, table_csv]


def accuracy_figure(rows: list[dict], out_dir: Path) -> list[Path]:
    """Per label set: mean test accuracy per target, one bar per split family, with the spread over
    splits and seeds as error bars and chance as a line."""
    from orchestrator.results.plots import plt
    paths = []
    for (labels,), rs in grouped(rows, ("labels",)).items():
        targets = sorted({r["target"] for r in rs})
        groups = sorted({r["group"] for r in rs})
        fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(targets) * max(1, len(groups)) / 2, 3.4), dpi=100)
        width = 0.8 / len(groups)
        for g, group in enumerate(groups):
            cells = [[r["test_acc"] for r in rs if r["target"] == t and r["group"] == group] for t in targets]
            means = [_stats(c)[0] if c else float("nan") for c in cells]
            errs = [_stats(c)[1] if len(c) > 1 else 0.0 for c in cells]
            ax.bar([i + g * width for i in range(len(targets))], means, width, yerr=errs, label=group, capsize=2)
        chance = 0.5 if labels == "target" else None
        if chance:
            ax.axhline(chance, color="grey", linestyle="--", linewidth=1)
        ax.set_xticks([i + width * (len(groups) - 1) / 2 for i in range(len(targets))], targets, fontsize=8)
        ax.set(ylabel="test accuracy", ylim=(0, 1), title=f"test accuracy on each split ({_label(labels)} labels)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"split_accuracy_{_label(labels)}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths


def finish_splits(spec, rows: list[dict], log: SweepLog, complete: bool) -> None:
    """The results table, figure and per-family means onto the sweep folder and the parent run."""
    from orchestrator.kinds.splits.build import export_splits
    out_dir = Path(spec.sweep_dir)
    if rows:
        log.artifacts(PARENT, write_split_tables(rows, out_dir) + accuracy_figure(rows, out_dir))
        log.artifacts(PARENT, export_splits(spec, out_dir / "splits"), folder="splits")
        metrics = {}
        for by in (("labels", "group"), ("labels", "target", "group")):
            for key, rs in grouped(rows, by).items():
                name = "/".join([_label(key[0]), *key[1:]])
                metrics[f"splits/{name}/mean_test_acc"] = _stats([r["test_acc"] for r in rs])[0]
                metrics[f"splits/{name}/trials"] = len(rs)
        log.metrics(PARENT, metrics, step=0)
    log.finish(PARENT, failed=not complete)
