"""The sweep's own record of finished trials: one Parquet file per trial in `<sweep>/record/`.

Each trial's row is written to a temporary file and renamed into place, so the record holds
whole rows only, even if the driver is killed mid-write; a rerun reads it to skip what is
done. Keying files by trial makes a repeated write idempotent: nothing is recorded twice.
A file that cannot be read anyway (a disk fault, a hand edit) is moved aside with a warning,
and its trial counts as not done: the record heals by running it again.
"""
from __future__ import annotations

import os
import tempfile
import time
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ASIDE = "unreadable"


class Record:
    def __init__(self, sweep_dir: str | Path):
        self.dir = Path(sweep_dir) / "record"
        self.aside_dir = self.dir / ASIDE
        self.set_aside: list[Path] = []  # files this reader moved aside

    def done_keys(self) -> set[str]:
        return {key for key, _ in self._tables()}

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

    def _tables(self) -> list[tuple[str, pa.Table]]:
        out = []
        for f in sorted(self.dir.glob("*.parquet")) if self.dir.is_dir() else []:
            try:
                out.append((f.stem, pq.read_table(f)))
            except (pa.ArrowException, OSError) as e:
                self._set_aside(f, e)
        return out

    def _set_aside(self, f: Path, error: Exception) -> None:
        self.aside_dir.mkdir(exist_ok=True)
        target = self.aside_dir / f"{f.stem}.{int(time.time())}.parquet"
        os.replace(f, target)
        self.set_aside.append(target)
        warnings.warn(f"record file {f} is unreadable ({str(error).splitlines()[0][:120]}); moved it to {target}, "
                      "its trial runs again on the next sweep", stacklevel=3)

    def table(self) -> pa.Table | None:
        """All finished rows, or None if nothing is recorded yet."""
        tables = [t for _, t in self._tables()]
        return pa.concat_tables(tables, promote_options="default") if tables else None

    def rows(self) -> list[dict]:
        table = self.table()
        return [] if table is None else table.to_pylist()
