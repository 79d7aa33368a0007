"""The sweep's own record of finished trials: one Parquet file per trial in `<sweep>/record/`.

Each trial's row is written to a temporary file and renamed into place, so the record holds
whole rows only, even if the driver is killed mid-write; a rerun reads it to skip what is
done. Keying files by trial makes a repeated write idempotent: nothing is recorded twice.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .spec import TrialSpec
from .specio import to_plain

RESULT_FIELDS = ("agreement", "balance", "epochs", "wall_s", "images_per_s")


class Record:
    def __init__(self, sweep_dir: str | Path):
        self.dir = Path(sweep_dir) / "record"

    def done_keys(self) -> set[str]:
        return {p.stem for p in self.dir.glob("*.parquet")} if self.dir.is_dir() else set()

    def add(self, trial: TrialSpec, result: dict) -> dict:
        """Append the row of a finished trial atomically; `result` is AgreementResult.to_dict()."""
        row = {"key": trial.key, "spec": trial.spec, "run_name": trial.run_name, "group": trial.group, "kind": trial.kind,
               "index": trial.index, "source": trial.source, "seed": trial.seed,
               "protocol_hash": trial.protocol_hash, "arch": trial.protocol.arch, "width": trial.protocol.width,
               "protocol": json.dumps(to_plain(trial.protocol), sort_keys=True), "task": result["task"]}
        row.update({k: result[k] for k in RESULT_FIELDS})
        for part in ("train_acc", "holdout_acc", "test_acc"):
            for i in range(2):
                row[f"{part}_{i}"] = float(result[part][i])
        row["finished_at"] = time.time()
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".parquet")
        os.close(fd)
        try:
            pq.write_table(pa.Table.from_pylist([row]), tmp)
            os.replace(tmp, self.dir / f"{trial.key}.parquet")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return row

    def table(self) -> pa.Table | None:
        """All finished rows, or None if nothing is recorded yet."""
        files = sorted(self.dir.glob("*.parquet")) if self.dir.is_dir() else []
        if not files:
            return None
        return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")

    def rows(self) -> list[dict]:
        table = self.table()
        return [] if table is None else table.to_pylist()
