"""The sweep's own record of finished trials, in `<sweep>/record/`.

A finished trial's row is written to its own file (`<key>.parquet`, to a temporary name then renamed
into place), so the record holds whole rows only even if the driver is killed mid-write, and a
repeated write is idempotent. Every COMPACT_AT such files, and at the end of a sweep, they are
merged into one segment (`segments/<n>.parquet`, written the same way) and then removed: a record
of 10,000 trials is a handful of files, read in one pass. A driver killed between a segment's
rename and the removal leaves rows twice; readers keep the first copy of each key.
A file that cannot be read (a disk fault, a hand edit) is moved aside with a warning, and its
trials count as not done: the record heals by running them again.
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
SEGMENTS = "segments"
COMPACT_AT = 256  # loose files merged into a segment: bounds the files a read opens, and each merge's cost


class Record:
    def __init__(self, sweep_dir: str | Path):
        self.dir = Path(sweep_dir) / "record"
        self.segments_dir = self.dir / SEGMENTS
        self.aside_dir = self.dir / ASIDE
        self.set_aside: list[Path] = []  # files this reader moved aside
        self.added = 0  # rows this writer added since its last compaction

    def done_keys(self) -> set[str]:
        table = self.table(columns=["key"])
        return set() if table is None else set(table.column("key").to_pylist())

    def add(self, key: str, row: dict) -> None:
        """Record the row of finished trial `key` atomically."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._write(pa.Table.from_pylist([{**row, "key": key, "finished_at": time.time()}]), self.dir / f"{key}.parquet")
        self.added += 1
        if self.added >= COMPACT_AT:
            self.compact()

    def compact(self) -> None:
        """Merge the loose per-trial files into one segment, then remove them."""
        self.added = 0
        loose = self._loose()
        tables = [t for t in (self._read(f) for f in loose) if t is not None]
        if not tables:
            return
        self.segments_dir.mkdir(exist_ok=True)
        n = max((int(p.stem) for p in self._segments()), default=-1) + 1
        self._write(pa.concat_tables(tables, promote_options="permissive"), self.segments_dir / f"{n:06d}.parquet")
        for f in loose:
            f.unlink(missing_ok=True)

    def table(self, columns: list[str] | None = None) -> pa.Table | None:
        """All finished rows (only `columns` when given), one per key, or None if nothing is recorded yet."""
        tables = [t for t in (self._read(f, columns) for f in self._segments() + self._loose()) if t is not None]
        if not tables:
            return None
        table = pa.concat_tables(tables, promote_options="permissive")
        keys = table.column("key").to_pylist()
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        return table if len(first) == len(keys) else table.take(sorted(first.values()))

    def rows(self) -> list[dict]:
        table = self.table()
        return [] if table is None else table.to_pylist()

    def _loose(self) -> list[Path]:
        return _parquet_files(self.dir)

    def _segments(self) -> list[Path]:
        return _parquet_files(self.segments_dir)

    def _read(self, f: Path, columns: list[str] | None = None) -> pa.Table | None:
        try:
            return pq.read_table(f, columns=columns)
        except FileNotFoundError:  # compacted by another reader's writer in the meantime
            return None
        except (pa.ArrowException, OSError) as e:
            self._set_aside(f, e)
            return None

    def _write(self, table: pa.Table, path: Path) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".parquet")
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _set_aside(self, f: Path, error: Exception) -> None:
        self.aside_dir.mkdir(exist_ok=True)
        name = f.stem if f.parent == self.dir else f"segment-{f.stem}"
        target = self.aside_dir / f"{name}.{int(time.time())}.parquet"
        os.replace(f, target)
        self.set_aside.append(target)
        warnings.warn(f"record file {f} is unreadable ({str(error).splitlines()[0][:120]}); moved it to {target}, "
                      "its trials run again on the next sweep", stacklevel=3)


def _parquet_files(folder: Path) -> list[Path]:
    """The record's files in `folder`; not the temporary ones a writer is filling (`.tmp-*`), which a reader
    (`taskdisc results` during a sweep) would otherwise take for unreadable and move from under it."""
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith(".")) if folder.is_dir() else []
