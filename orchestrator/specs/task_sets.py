"""Task sets of a spec: which tasks (a kind, indices or a table's columns, a source file) under which name.

`tasks:` of an agreement spec, `score.baselines`, `splits.targets`/`rules` all read them here, so every
section checks names, kinds, files and index ranges the same way.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainables.config import param
from trainables.labels import TaskError
from trainables.task_table import read_table
from trainables.tasks import TASK_KINDS, task_count

from orchestrator.specs.indices import parse_indices
from orchestrator.specs.io import SpecError, build

# Names become folder and file names (sweep folder, record files, Tune trial folders) and MLflow run
# names: one safe path component, never '.' or '..', short enough for both.
NAME = re.compile(r"^(?!\.+$)[A-Za-z0-9_.-]{1,100}$")
NAME_RULE = "use 1-100 letters, digits, '_', '-' and '.' (not only dots)"


@dataclass(frozen=True)
class TaskSet:
    group: str = param("real", "name of this set in results and run names (its key under `tasks:`)")
    kind: str = param("real", "task kind registry name; defaults to the set's key", choices=tuple(TASK_KINDS))
    indices: tuple[int, ...] = param((0,), "task indices to score, e.g. '0-125' or [0, 5, 7]")
    source: str | None = param(None, "file the tasks come from (table: CSV/Parquet; discovered: checkpoint or table)")
    num_classes: int = param(2, "number of classes of each task (random tasks)", ge=2)


def column_names_given(value: Any) -> bool:
    """Whether `columns` names table columns ('resnet18-*', [mlp-0, mlp-1]) rather than giving indices."""
    items = value if isinstance(value, list) else [value]
    return any(isinstance(v, str) and re.search(r"[A-Za-z_*?]", v) for v in items)


def columns_by_name(value: Any, source: str | None, key: str, origin: str) -> tuple[int, ...]:
    """Column positions of a task table for names or shell-style patterns, in the table's order."""
    if not source:
        raise SpecError(f"{origin}: {key} names columns, so the set needs a table: set path")
    if not Path(source).is_file():
        raise SpecError(f"{origin}: {key} names columns of {source}, which does not exist; give the path of that table")
    try:
        names = read_table(source)[0]
    except TaskError as e:
        raise SpecError(f"{origin}: {key}: {e}") from None
    patterns = [str(v) for v in (value if isinstance(value, list) else [value])]
    missing = [p for p in patterns if not fnmatch.filter(names, p)]
    if missing:
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        raise SpecError(f"{origin}: {key}: {missing[0]!r} matches no column of {source} (its columns: {shown})")
    return tuple(i for i, n in enumerate(names) if any(fnmatch.fnmatchcase(n, p) for p in patterns))


def task_sets(raw: Any, origin: str, section: str = "tasks") -> tuple[TaskSet, ...]:
    """Task sets from `{group: indices or {kind, indices/columns, path, num_classes}}`; errors name
    `section` (tasks, score.baselines, splits.rules, ...)."""
    if not isinstance(raw, dict) or not raw:
        raise SpecError(f"{origin}: {section} must map task kinds to indices, e.g. {{real: 0-125, random: 0-31}}")
    sets = []
    for group, value in raw.items():
        key = f"{section}.{group}"
        body = dict(value) if isinstance(value, dict) else {"indices": value}
        kind = body.pop("kind", group)
        if kind not in TASK_KINDS:
            raise SpecError(f"{origin}: unknown task kind {key}" + ("" if kind == group else f".kind={kind!r}")
                            + f"; choose from {', '.join(sorted(TASK_KINDS))} (or name one with kind: ...)")
        if not NAME.match(str(group)):
            raise SpecError(f"{origin}: {str(key)[:80]} is not a valid set name: {NAME_RULE}")
        if "path" in body:
            body["source"] = body.pop("path")
        if "columns" in body and column_names_given(body["columns"]):  # the authors' tables name their tasks
            indices = columns_by_name(body.pop("columns"), body.get("source"), f"{key}.columns", origin)
        else:
            if "columns" in body:  # the table kind calls its indices columns
                body["indices"] = body.pop("columns")
            if "indices" not in body:
                raise SpecError(f"{origin}: {key} needs indices (or columns), e.g. 0-31")
            indices = parse_indices(body.pop("indices"), f"{key}.indices", origin)
        ts = build(TaskSet, body, key, origin, shown=("indices", "columns", "path", "kind"), group=str(group),
                   kind=kind, indices=indices)
        if ts.source is not None:
            if not Path(ts.source).exists():
                raise SpecError(f"{origin}: {key}.source={ts.source!r} does not exist; give an existing file")
            ts = dataclasses.replace(ts, source=str(Path(ts.source).resolve()))
        try:
            count = task_count(ts.kind, ts.source)
        except TaskError as e:
            raise SpecError(f"{origin}: {key}: {e}") from None
        if count is not None and max(ts.indices) >= count:
            raise SpecError(f"{origin}: {key}.indices includes {max(ts.indices)}: {ts.kind} tasks"
                            f"{'' if ts.source is None else ' of ' + ts.source} are 0..{count - 1}")
        sets.append(ts)
    return tuple(sets)


def task_sets_data(sets) -> dict:
    return {ts.group: {"kind": ts.kind, "indices": list(ts.indices), "source": ts.source,
                       "num_classes": ts.num_classes} for ts in sets}
