"""Task kinds: the paper's real and random tasks, the 10-way labels and task tables."""
from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from trainables.data import CIFAR10_MEAN, CIFAR10_STD, ImageDataset
from trainables.discovery import table_of_test_images, write_table
from trainables.labels import REAL_TASKS, TaskError, TaskLabels
from trainables.task_table import read_table
from trainables.tasks import TASK_KINDS, make_task, register_task_kind, task_count

N_TRAIN, N_TEST = 40, 20


@pytest.fixture
def dataset() -> ImageDataset:
    """A 10-class stand-in for CIFAR-10: labels cycle through the classes."""
    g = torch.Generator().manual_seed(0)
    return ImageDataset("fake10", torch.randint(0, 256, (N_TRAIN, 3, 4, 4), dtype=torch.uint8, generator=g),
                        torch.arange(N_TRAIN) % 10,
                        torch.randint(0, 256, (N_TEST, 3, 4, 4), dtype=torch.uint8, generator=g),
                        torch.arange(N_TEST) % 10, tuple(f"c{i}" for i in range(10)), CIFAR10_MEAN, CIFAR10_STD)


def _csv(path, columns: dict[str, list[int]], order=None) -> str:
    """The authors' format (pandas `to_csv`): an index column with an empty header, then tasks."""
    n = len(next(iter(columns.values())))
    order = list(range(n)) if order is None else order
    lines = ["," + ",".join(columns)]
    lines += [",".join([str(order[r])] + [str(c[r]) for c in columns.values()]) for r in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def table(tmp_path) -> str:
    rng = np.random.default_rng(0)
    return _csv(tmp_path / "tasks.csv", {"t0": rng.integers(0, 2, N_TRAIN).tolist(),
                                         "t1": rng.integers(0, 2, N_TRAIN).tolist()})


def _discovered_table(tmp_path) -> str:
    """A task table as a discovery run exports it (train and test labels of 3 tasks)."""
    g = torch.Generator().manual_seed(1)
    path = write_table(torch.randint(0, 2, (N_TRAIN, 3), generator=g), tmp_path / "discovered.parquet")
    write_table(torch.randint(0, 2, (N_TEST, 3), generator=g), table_of_test_images(path))
    return str(path)


# Every registered kind with an index and a source to build one task: a kind registered
# without an entry here fails test_every_registered_kind_is_covered.
CASES = {"real": (1, lambda tmp_path, table: None), "real10": (0, lambda tmp_path, table: None),
         "random": (1, lambda tmp_path, table: None), "table": (1, lambda tmp_path, table: table),
         "discovered": (2, lambda tmp_path, table: _discovered_table(tmp_path)),
         "classes": (1, lambda tmp_path, table: _class_sets(tmp_path))}


def _class_sets(tmp_path) -> str:
    """Two class-set tasks in the authors' .npy layout (rows of positive class ids)."""
    np.save(tmp_path / "classes.npy", np.array([[0, 1, 2, 3, 4], [1, 3, 5, 7, 9]], dtype=np.int64))
    return str(tmp_path / "classes.npy")


def test_every_registered_kind_is_covered():
    assert set(CASES) == set(TASK_KINDS)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_every_kind_labels_every_training_image(kind, dataset, table, tmp_path):
    index, source = CASES[kind]
    source = source(tmp_path, table)
    labels = make_task(kind, index, dataset, source=source)
    count = task_count(kind, source)
    assert count is None or index < count
    assert labels.train.shape == (N_TRAIN,) and labels.train.dtype == torch.long
    assert 0 <= labels.train.min() and labels.train.max() < labels.num_classes
    if labels.test is not None:
        assert labels.test.shape == (N_TEST,) and labels.test.max() < labels.num_classes
    assert 1 / labels.num_classes <= labels.balance() <= 1
    assert kind in labels.name


def test_real_task_0_is_classes_0_to_4(dataset):
    labels = make_task("real", 0, dataset)
    assert REAL_TASKS[0] == (0, 1, 2, 3, 4)
    assert labels.train.tolist() == [int(c < 5) for c in dataset.train_y.tolist()]
    assert labels.test.tolist() == [int(c < 5) for c in dataset.test_y.tolist()]
    assert labels.num_classes == 2 and labels.balance() == 0.5


def test_the_126_real_tasks_are_the_distinct_bipartitions():
    assert len(REAL_TASKS) == 126
    assert list(REAL_TASKS) == list(itertools.combinations(range(10), 5))[:126]
    assert all(0 in t for t in REAL_TASKS)
    halves = {frozenset(t) for t in REAL_TASKS} | {frozenset(range(10)) - set(t) for t in REAL_TASKS}
    assert len(halves) == 252  # every 5-subset once, as a task or as its complement


def test_real10_is_the_class_labels(dataset):
    labels = make_task("real10", 0, dataset)
    assert torch.equal(labels.train, dataset.train_y) and labels.num_classes == 10


def test_random_tasks_are_seeded_by_index(dataset):
    a, again, other = (make_task("random", i, dataset) for i in (3, 3, 4))
    assert torch.equal(a.train, again.train) and torch.equal(a.test, again.test)
    assert not torch.equal(a.train, other.train)
    assert torch.equal(a.train, torch.randint(2, (N_TRAIN,), generator=torch.Generator().manual_seed(3)))
    assert make_task("random", 0, dataset, num_classes=5).train.max() == 4


def test_digest_names_the_labelling_not_the_task(tmp_path, dataset):
    real0 = make_task("real", 0, dataset)
    assert real0.digest() == make_task("real", 0, dataset).digest() != make_task("real", 1, dataset).digest()
    column = _csv(tmp_path / "t.csv", {"c": real0.train.tolist()})
    same_train = make_task("table", 0, dataset, source=column)  # same training labels, no test labels
    assert same_train.digest() == TaskLabels("x", real0.train.clone(), None, 2).digest() != real0.digest()
    assert TaskLabels("x", real0.train, None, 3).digest() != same_train.digest()  # classes count too


def test_table_from_csv_and_parquet(tmp_path, dataset):
    cols = {"a": [r % 2 for r in range(N_TRAIN)], "b": [int(r < 10) for r in range(N_TRAIN)]}
    csv = _csv(tmp_path / "t.csv", cols)
    pq.write_table(pa.table({"__index_level_0__": np.arange(N_TRAIN), **{k: np.array(v) for k, v in cols.items()}}),
                   tmp_path / "t.parquet")
    for source in (csv, str(tmp_path / "t.parquet")):
        names, values = read_table(source)
        assert names == ["a", "b"] and values.shape == (N_TRAIN, 2)
        labels = make_task("table", 1, dataset, source=source)
        assert labels.train.tolist() == cols["b"] and labels.test is None and labels.name == "table-b"


def test_table_rows_follow_the_index_column(tmp_path, dataset):
    order = list(reversed(range(N_TRAIN)))
    source = _csv(tmp_path / "t.csv", {"a": [int(r < 10) for r in range(N_TRAIN)]}, order=order)
    # row r of the file is dataset index N_TRAIN-1-r
    assert make_task("table", 0, dataset, source=source).train.tolist() == [int(i >= 30) for i in range(N_TRAIN)]


def _one_line_task_error(fn) -> str:
    with pytest.raises(TaskError) as e:
        fn()
    msg = str(e.value)
    assert msg and "\n" not in msg
    return msg


def test_task_errors(tmp_path, dataset, table):
    bad = [
        (lambda: make_task("real", 126, dataset), "0..125"),
        (lambda: make_task("real", -1, dataset), "out of range"),
        (lambda: make_task("real10", 1, dataset), "out of range"),
        (lambda: make_task("random", -1, dataset), "out of range"),
        (lambda: make_task("table", 2, dataset, source=table), "0..1"),
        (lambda: make_task("table", 0, dataset), "source"),
        (lambda: make_task("table", 0, dataset, source=str(tmp_path / "none.csv")), "none.csv"),
        (lambda: make_task("table", 0, dataset,
                           source=_csv(tmp_path / "short.csv", {"a": [0, 1, 0]})), "3 rows"),
        (lambda: make_task("table", 0, dataset,
                           source=_csv(tmp_path / "float.csv", {"a": [0.5] * N_TRAIN})), "integers"),
        (lambda: make_task("table", 0, dataset,
                           source=_csv(tmp_path / "big.csv", {"a": [2] * N_TRAIN})), "outside 0..1"),
        (lambda: make_task("table", 0, dataset,
                           source=_csv(tmp_path / "neg.csv", {"a": [-1] * N_TRAIN})), "outside 0..1"),
    ]
    for fn, expected in bad:
        assert expected in _one_line_task_error(fn)
    unknown = _one_line_task_error(lambda: make_task("mystery", 0, dataset))
    assert all(kind in unknown for kind in TASK_KINDS)
    with pytest.raises(TaskError, match="10-class"):
        make_task("real", 0, ImageDataset("three", dataset.train_x, dataset.train_y % 3, dataset.test_x,
                                          dataset.test_y % 3, ("a", "b", "c"), CIFAR10_MEAN, CIFAR10_STD))


def test_register_task_kind(dataset, monkeypatch):
    monkeypatch.setitem(TASK_KINDS, "ones", None)  # restored after the test
    register_task_kind("ones", lambda ds, index, *, source, num_classes: TaskLabels(
        "ones", torch.ones(len(ds.train_y), dtype=torch.long), None, num_classes))
    assert make_task("ones", 0, dataset).train.sum() == N_TRAIN


def test_class_sets_label_by_class_and_reject_bad_rows(dataset, tmp_path):
    labels = make_task("classes", 1, dataset, source=_class_sets(tmp_path))
    assert torch.equal(labels.train, (dataset.train_y % 2 == 1).long())
    assert torch.equal(labels.test, (dataset.test_y % 2 == 1).long())
    text = tmp_path / "classes.txt"
    text.write_text("0, 1, 2, 3, 4\n")  # the same task as real task 0, as text
    assert torch.equal(make_task("classes", 0, dataset, source=str(text)).train, make_task("real", 0, dataset).train)
    assert task_count("classes", str(text)) == 1
    text.write_text("0 1 12\n")
    with pytest.raises(TaskError, match="distinct class ids in 0..9"):
        make_task("classes", 0, dataset, source=str(text))
    np.save(tmp_path / "floats.npy", np.ones((2, 3)))
    with pytest.raises(TaskError, match="integer .npy"):
        make_task("classes", 0, dataset, source=str(tmp_path / "floats.npy"))


def test_tables_record_the_image_order_they_index(dataset, tmp_path):
    """A table written for one ordering of the images is refused on another; one without an order
    (the authors' CSVs) is used with a warning that says which order it is taken to follow."""
    import dataclasses
    import warnings

    from trainables.order import image_order
    labels = torch.randint(0, 2, (N_TRAIN, 2), generator=torch.Generator().manual_seed(0))
    path = write_table(labels, tmp_path / "tasks.parquet", image_order(dataset.train_x))
    assert torch.equal(make_task("table", 1, dataset, source=str(path)).train, labels[:, 1])
    perm = torch.randperm(N_TRAIN, generator=torch.Generator().manual_seed(1))
    shuffled = dataclasses.replace(dataset, train_x=dataset.train_x[perm], train_y=dataset.train_y[perm])
    for kind in ("table", "discovered"):
        with pytest.raises(TaskError, match=f"indexes training images in order {image_order(dataset.train_x)}, "
                                            f"but fake10 here has order {image_order(shuffled.train_x)}"):
            make_task(kind, 0, shuffled, source=str(path))
    csv = write_table(labels, tmp_path / "authors.csv")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_task("table", 0, shuffled, source=str(csv))
        make_task("table", 1, shuffled, source=str(csv))
    assert len(caught) == 1 and "records no image order" in str(caught[0].message)
