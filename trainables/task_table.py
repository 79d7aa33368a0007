"""Task tables: one integer column per task, one row per training image (the authors' CSV, or Parquet
that records the image order it indexes), read once while unchanged."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from .labels import TaskError
from .order import check_order


def file_version(path: Path) -> tuple:
    """What tells a file's versions apart for the readers' memo: (path, size, mtime)."""
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def read_table(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Task columns and their values (rows = dataset indices) from the authors' CSV or Parquet.

    A leading index column (empty header, 'index' or '__index_level_0__') orders the rows. A table
    is read once while it is unchanged (one read per sweep, not one per task), its values read-only.
    """
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"task table {path} does not exist; pass the path of a CSV or Parquet task table")
    return _read_table(path, file_version(path))


@functools.lru_cache(maxsize=8)
def _read_table(path: Path, version: tuple) -> tuple[list[str], np.ndarray]:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    try:
        table = pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)
    except Exception as e:  # pyarrow raises ArrowInvalid and friends
        raise TaskError(f"task table {path} is unreadable ({e}); give a CSV or .parquet file") from None
    names = list(table.column_names)
    order = None
    if names and names[0] in ("", "index", "__index_level_0__"):
        order = np.asarray(table.column(0).to_numpy(zero_copy_only=False))
        names = names[1:]
    if not names:
        raise TaskError(f"task table {path} has no task columns; add one column per task")
    values = []
    for n in names:
        col = table.column(n)
        if col.null_count or not (str(col.type).startswith(("int", "uint"))):
            raise TaskError(f"task table {path}: column {n!r} holds {col.type} values (or blanks); "
                            "labels must be integers")
        values.append(col.to_numpy())
    values = np.stack(values, axis=1)
    if order is not None:
        if sorted(order.tolist()) != list(range(len(order))):
            raise TaskError(f"task table {path}: the index column is not a permutation of 0..{len(order) - 1}")
        values = values[np.argsort(order)]
    values.setflags(write=False)
    return names, values


def check_table_order(path, images, dataset: str, what: str) -> None:
    """TaskError if the table at `path` indexes another order of `images` (trainables.order)."""
    try:
        check_order(path, images, dataset, what)
    except ValueError as e:
        raise TaskError(str(e)) from None
