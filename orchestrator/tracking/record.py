"""The sweep's own record of finished trials: one Parquet file per trial in `<sweep>/record/`.

Each trial's row is written to a temporary file and renamed into place, so the record holds
whole rows only, even if the driver is killed mid-write; a rerun reads it to skip what is
done. Keying files by trial makes a repeated write idempotent: nothing is recorded twice.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


class Record:
    def __init__(self, sweep_dir: str | Path):
        self.dir = Path(sweep_dir) / "record"

    def done_keys(self) -> set[str]:
        return {p.stem for p in self.dir.glob("*.parquet")} if self.dir.is_dir() else set()

    def add(self, key: str, row: dict) -> None:
        """Append the row of finished trial `key` atomically."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".parquet")
        os.close(fd)
        try:
            pq.write_table(pa.Table.from_pylist([{**row, "key": key, "finished_at": time.time()}]), tmp)
            os.replace(tmp, self.dir / f"{key}.parquet")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def table(self) -> pa.Table | None:
        """All finished rows, or None if nothing is recorded yet."""
        files = sorted(self.dir.glob("*.parquet")) if self.dir.is_dir() else []
        if not files:
            return None
        return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")

    def rows(self) -> list[dict]:
        table = self.table()
        return [] if table is None else table.to_pylist()
