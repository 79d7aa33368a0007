"""Split files: the authors' layouts, Parquet, and a CelebA-style partition CSV.

| layout | shape |
| authors' (cifar_splits.torch) | `{target_task_index: [(train_ids, test_ids), ...]}`, torch.save |
| single split (adv-split.torch) | `[train_ids, test_ids]`, torch.save |
| Parquet (.parquet) | one row per split: target (int, -1 = none), split (int), train, test (lists of int64) |
| partition CSV (write only) | `image_id,partition` per image in dataset order: 0 = train, 2 = test |

Torch files are read with `weights_only=True` only: a file holding anything but tensors, lists,
tuples, dicts and numbers is refused, never unpickled.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..order import order_metadata
from .construct import SplitError, TrainTestSplit, check_split

TORCH_SUFFIXES = (".torch", ".pt", ".pth")
NO_TARGET = -1  # key of a single split, which names no target task
Splits = dict[int, list[TrainTestSplit]]


def _ids(value: Any, where: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return torch.tensor(value, dtype=torch.int64)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    raise SplitError(f"{where}: a split part is {type(value).__name__}, not a tensor or list of image indices; "
                     "write each part as a 1-D integer tensor or list")


def _is_part(value: Any) -> bool:
    """A tensor, array or list of ints: one part of a split (not a list of splits)."""
    return isinstance(value, (torch.Tensor, np.ndarray)) or (
        isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value))


def _pair(value: Any, where: str) -> TrainTestSplit:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise SplitError(f"{where}: a split must be a (train_ids, test_ids) pair; rewrite it in that layout")
    return TrainTestSplit(_ids(value[0], where), _ids(value[1], where))


def _from_object(obj: Any, where: str) -> Splits:
    if isinstance(obj, dict):
        out: Splits = {}
        for key, value in obj.items():
            if not isinstance(key, int) or isinstance(key, bool) or key < 0:
                raise SplitError(f"{where}: key {key!r} is not a target task index; the authors' layout maps "
                                 "task indices to lists of (train_ids, test_ids)")
            if not isinstance(value, (list, tuple)) or not value:
                raise SplitError(f"{where}: target {key} maps to {type(value).__name__}, not a non-empty list of "
                                 "(train_ids, test_ids) pairs")
            out[key] = [_pair(v, f"{where} [{key}][{i}]") for i, v in enumerate(value)]
        if not out:
            raise SplitError(f"{where}: holds no splits; write at least one")
        return out
    if isinstance(obj, (list, tuple)) and len(obj) == 2 and all(_is_part(p) for p in obj):
        return {NO_TARGET: [_pair(obj, where)]}
    raise SplitError(f"{where}: not a split file (expected {{task_idx: [(train_ids, test_ids), ...]}} or "
                     "[train_ids, test_ids]); pass a file in one of those layouts")


def _read_torch(path: Path) -> Splits:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" not in str(e):  # not a pickle of objects at all, rather than one that was refused
            raise SplitError(f"{path}: not a readable torch file; re-save it with torch.save") from None
        raise SplitError(f"{path}: holds objects other than tensors, lists and numbers and was not loaded "
                         "(weights_only); save the splits as plain tensors or lists") from None
    except Exception as e:  # truncated file, not a zip or pickle at all
        raise SplitError(f"{path}: not a readable torch file ({type(e).__name__}); re-save it with torch.save") from None
    return _from_object(obj, str(path))


def _read_parquet(path: Path) -> Splits:
    import pyarrow.parquet as pq
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises ArrowInvalid and friends
        raise SplitError(f"{path}: not a readable Parquet file ({type(e).__name__}); re-write it") from None
    missing = {"target", "split", "train", "test"} - set(table.column_names)
    if missing:
        raise SplitError(f"{path}: missing columns {sorted(missing)}; a split table has target, split, train, test")
    out: Splits = {}
    for row in sorted(table.to_pylist(), key=lambda r: (r["target"], r["split"])):
        out.setdefault(int(row["target"]), []).append(
            TrainTestSplit(_ids(row["train"] or [], str(path)), _ids(row["test"] or [], str(path))))
    if not out:
        raise SplitError(f"{path}: holds no splits; write at least one")
    return out


def read_splits(path: str | Path, n_images: int | None = None) -> Splits:
    """Splits of a file by target task index (NO_TARGET for a single split), each checked against
    `n_images` when given: indices in range, none twice, no image in both parts."""
    path = Path(path)
    if not path.is_file():
        raise SplitError(f"split file {path} does not exist; give a .torch/.pt or .parquet split file")
    if path.suffix in TORCH_SUFFIXES:
        splits = _read_torch(path)
    elif path.suffix == ".parquet":
        splits = _read_parquet(path)
    else:
        raise SplitError(f"split file {path}: unknown suffix {path.suffix!r}; use .torch, .pt or .parquet")
    if n_images is not None:
        splits = {k: [check_split(s, n_images, f"{path} [{k}][{i}]") for i, s in enumerate(v)]
                  for k, v in splits.items()}
    return splits


def _write_atomic(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    write(tmp)
    tmp.replace(path)
    return path


def write_splits(path: str | Path, splits: Splits, order: str | None = None) -> Path:
    """The authors' layout (.torch/.pt) or a Parquet split table, by suffix; a Parquet table records
    `order`, the identity of the image order its indices refer to (trainables.order)."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        rows = [{"target": k, "split": i, "train": s.train.tolist(), "test": s.test.tolist()}
                for k, v in splits.items() for i, s in enumerate(v)]
        table = pa.Table.from_pylist(rows).replace_schema_metadata(order_metadata(order))
        return _write_atomic(path, lambda p: pq.write_table(table, p))
    if path.suffix not in TORCH_SUFFIXES:
        raise SplitError(f"split file {path}: use a .torch, .pt or .parquet suffix")
    obj = {k: [(s.train.clone(), s.test.clone()) for s in v] for k, v in splits.items()}
    return _write_atomic(path, lambda p: torch.save(obj, p))


def write_single_split(path: str | Path, split: TrainTestSplit) -> Path:
    """The single-split layout `[train_ids, test_ids]` (the authors' adv-split.torch)."""
    return _write_atomic(Path(path), lambda p: torch.save([split.train.clone(), split.test.clone()], p))


def write_partition_csv(path: str | Path, split: TrainTestSplit, image_ids: list[str]) -> Path:
    """`image_id,partition` for every image of the split in dataset order (0 = train, 2 = test), as
    CelebA's list_eval_partition.csv, so other codebases can train on the split."""
    part = np.full(len(image_ids), -1)
    part[split.train.numpy()] = 0
    part[split.test.numpy()] = 2
    lines = ["image_id,partition"] + [f"{name},{p}" for name, p in zip(image_ids, part.tolist()) if p >= 0]
    return _write_atomic(Path(path), lambda p: p.write_text("\n".join(lines) + "\n"))
