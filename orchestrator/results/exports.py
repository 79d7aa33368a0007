"""Results of the kinds whose trials export files (discovery, random-network splits, pretraining): the
summary of what they made and the parent run's table of them."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.tracking.tags import PARENT

if TYPE_CHECKING:
    from orchestrator.tracking.sweep_log import SweepLog


def summarize_exports(rows: list[dict], top: int | None = None) -> str:
    """One line per trial that exported files (an encoder, a random-network split, a backbone): name, time,
    folder (every one: `top` does not apply)."""
    lines = []
    for r in sorted(rows, key=lambda r: r["run_name"]):
        folder = Path(next(v for k, v in r.items() if k in ("table", "split", "backbone"))).parent
        sizes = f"  train {r['train_size']} / test {r['test_size']}" if "train_size" in r else ""
        lines.append(f"{r['run_name']:<48} {r['wall_s']:>8.1f}s{sizes}  -> {folder}")
    return "\n".join(lines)


def finish_exports(spec, rows: list[dict], log: SweepLog, complete: bool, kind: str) -> None:
    """Write `<kind>.parquet` (one row per exporting trial, e.g. per discovery encoder: config, final
    losses, export paths) onto the parent run."""
    if rows:
        path = Path(spec.sweep_dir) / f"{kind}.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
        log.artifacts(PARENT, [path])
    log.finish(PARENT, failed=not complete)
