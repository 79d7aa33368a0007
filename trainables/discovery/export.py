"""What a discovery run leaves behind: the encoder checkpoint and the task table, and the
`discovered` task kind that reads either back.

Task table layout (the authors' discovered.csv): a leading index column with an empty header,
then one 0/1 column per task, `discovered-0`, `discovered-1`, ...; one row per training image
in dataset order. The test images' labels go to a sibling file `<stem>-test<suffix>` in the
same layout, so a table gives test labels too. CSV or Parquet, chosen by the file suffix.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..data import device_images
from ..data import ImageDataset
from ..order import image_order, order_metadata
from ..labels import TaskError, TaskLabels
from ..task_table import check_table_order, read_table
from .config import DiscoveryConfig
from .encoder import TaskEncoder, build_encoder, encoder_labels

TABLE_SUFFIXES = (".csv", ".parquet")
CHECKPOINT_FORMAT = 1


def column_names(n_tasks: int) -> list[str]:
    return [f"discovered-{i}" for i in range(n_tasks)]


def table_of_test_images(path: str | Path) -> Path:
    """Where the test-image labels of task table `path` live."""
    path = Path(path)
    return path.with_name(f"{path.stem}-test{path.suffix}")


def write_table(labels: torch.Tensor | np.ndarray, path: str | Path, order: str | None = None) -> Path:
    """Write hard labels (N, n_tasks) as a task table (CSV or Parquet by suffix); a Parquet table
    records `order`, the identity of the image order its rows follow (trainables.order)."""
    path = Path(path)
    if path.suffix not in TABLE_SUFFIXES:
        raise ValueError(f"task table {path}: use a .csv or .parquet suffix")
    values = np.asarray(labels, dtype=np.int64)
    names = column_names(values.shape[1])
    index = np.arange(len(values), dtype=np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        columns = {"": index, **{name: values[:, i] for i, name in enumerate(names)}}
        pq.write_table(pa.table(columns).replace_schema_metadata(order_metadata(order)), path)
    else:  # by hand: pyarrow's CSV writer quotes the header, the authors' file does not
        np.savetxt(path, np.column_stack([index, values]), fmt="%d", delimiter=",",
                   header="," + ",".join(names), comments="")
    return path


def export_table(encoder: TaskEncoder, dataset: ImageDataset, path: str | Path,
                 device: torch.device | str = "cpu", batch_size: int = 2048) -> tuple[Path, Path]:
    """Label every training and test image with every task of a calibrated encoder (eval-mode
    BatchNorm) and write the task table `path` and its test sibling; returns both paths."""
    train, test = device_images(dataset, device)
    dtype = next(encoder.parameters()).dtype
    encoder.to(train.device)
    return (write_table(encoder_labels(encoder, train, batch_size=batch_size, dtype=dtype), path,
                        image_order(dataset.train_x)),
            write_table(encoder_labels(encoder, test, batch_size=batch_size, dtype=dtype), table_of_test_images(path),
                        image_order(dataset.test_x)))


def save_encoder(encoder: TaskEncoder, config: DiscoveryConfig, path: str | Path) -> Path:
    """Save the encoder's state (calibrate first: the running statistics label the images) with
    its config as a plain dict, loadable with weights_only=True."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    torch.save({"format": CHECKPOINT_FORMAT, "encoder": state, "config": asdict(config),
                "image_shape": list(encoder.image_shape)}, path)
    return path


def load_encoder(path: str | Path, device: torch.device | str = "cpu") -> tuple[TaskEncoder, DiscoveryConfig]:
    """The encoder (eval mode, on `device`) and config of a checkpoint written by save_encoder."""
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"encoder checkpoint {path} does not exist; pass a .pt file written by save_encoder")
    try:  # weights_only: a checkpoint is data, never code (a malicious pickle is refused here)
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError (not a zip), EOFError (truncated)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TaskError(f"{path} is not a readable encoder checkpoint ({first[:160]}); "
                        "pass a .pt file written by save_encoder") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise TaskError(f"{path} is not an encoder checkpoint of format {CHECKPOINT_FORMAT}; "
                        "pass a .pt file written by save_encoder")
    try:
        config = DiscoveryConfig(**ckpt["config"])
        encoder = build_encoder(config, tuple(ckpt["image_shape"]))
        dtype = ckpt["encoder"]["proj.weight"].dtype
        encoder.to(dtype).load_state_dict(ckpt["encoder"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        raise TaskError(f"{path}: encoder checkpoint with a missing or invalid entry ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:160] if str(e) else ''}); pass a .pt file written by save_encoder"
                        ) from None
    return encoder.to(device).eval(), config


def discovered_count(source: str | Path) -> int:
    """How many tasks an encoder checkpoint or task table from a discovery run holds."""
    path = Path(source)
    if path.suffix == ".pt":
        return load_encoder(path)[1].n_linear_tasks
    return len(read_table(path)[0])


def discovered_task(dataset: ImageDataset, index: int, *, source: str | None = None, num_classes: int = 2,
                    device: torch.device | str | None = None) -> TaskLabels:
    """Task `index` (hyperplane index) of a discovery run, from its encoder checkpoint (.pt:
    train and test labels, computed on `device`, default CUDA when available) or its task table
    (.csv/.parquet: train labels, and test labels when the `-test` sibling exists)."""
    if not source:
        raise TaskError("discovered tasks need a source: an encoder checkpoint (.pt) or a task table "
                        "(.csv/.parquet) from a discovery run")
    if num_classes != 2:
        raise TaskError(f"discovered tasks are binary; num_classes={num_classes} is not supported, use 2")
    path = Path(source)
    if path.suffix == ".pt":
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        encoder, _ = load_encoder(path, device)
        if not 0 <= index < encoder.n_tasks:
            raise TaskError(f"discovered task index {index} is out of range: {path} has tasks 0..{encoder.n_tasks - 1}")
        if tuple(dataset.image_shape) != encoder.image_shape:
            raise TaskError(f"{path} encodes images of shape {encoder.image_shape}, {dataset.name} has "
                            f"{tuple(dataset.image_shape)}; use the dataset the encoder was trained on")
        train, test = device_images(dataset, device)
        dtype = next(encoder.parameters()).dtype
        return TaskLabels(f"discovered-{index}", encoder_labels(encoder, train, dtype=dtype)[:, index],
                          encoder_labels(encoder, test, dtype=dtype)[:, index], 2)
    if path.suffix not in TABLE_SUFFIXES:
        raise TaskError(f"discovered task source {path}: expected an encoder checkpoint (.pt) or a task table "
                        "(.csv/.parquet)")
    train = _table_column(path, index, dataset, "training")
    test_path = table_of_test_images(path)
    test = _table_column(test_path, index, dataset, "test") if test_path.is_file() else None
    return TaskLabels(f"discovered-{index}", train, test, 2)


def _table_column(path: Path, index: int, dataset: ImageDataset, part: str) -> torch.Tensor:
    names, values = read_table(path)
    images = dataset.train_x if part == "training" else dataset.test_x
    n_rows = len(images)
    if not 0 <= index < len(names):
        raise TaskError(f"discovered task index {index} is out of range: {path} has tasks 0..{len(names) - 1}")
    if len(values) != n_rows:
        raise TaskError(f"task table {path} has {len(values)} rows but the dataset has {n_rows} {part} images; "
                        "use the table of this dataset")
    col = values[:, index]
    if col.min() < 0 or col.max() > 1:
        raise TaskError(f"task table {path}: column {names[index]!r} is not 0/1; discovered tasks are binary")
    check_table_order(path, images, dataset.name, f"{part} images")
    return torch.from_numpy(col.astype(np.int64))
