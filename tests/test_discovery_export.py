"""Encoder checkpoints, task tables and the `discovered` task kind."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from discovery_fixtures import synthetic_dataset
from trainables.data import device_images
from trainables.discovery import (DiscoveryConfig, DiscoveryRun, export_table, load_encoder, save_encoder,
                                  table_of_test_images)
from trainables.labels import TaskError
from trainables.task_table import read_table
from trainables.tasks import TASK_KINDS, make_task


pytestmark = pytest.mark.usefixtures("one_thread")


def trained_run(dataset, steps: int = 2) -> DiscoveryRun:
    config = DiscoveryConfig(arch="mlp", width=0.125, h_dim=8, n_linear_tasks=6, nsteps=2, inner_batch_size=32,
                             outer_batch_size=32, meta_steps=steps, holdout=min(200, len(dataset.train_y) // 5),
                             outer_pool=min(200, len(dataset.train_y) // 5),
                             probe_size=64, calibration_size=2000)
    train, test = device_images(dataset, "cpu")
    run = DiscoveryRun(train, test, config)
    while not run.done:
        run.step()
    run.calibrate()
    return run


@pytest.fixture(scope="module")
def dataset():
    return synthetic_dataset()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_table_round_trip(dataset, tmp_path, suffix):
    run = trained_run(dataset)
    train_labels, test_labels = run.labels()
    train_path, test_path = export_table(run.encoder, dataset, tmp_path / f"discovered{suffix}")
    assert test_path == table_of_test_images(train_path)
    names, values = read_table(train_path)
    assert names == [f"discovered-{i}" for i in range(6)]
    assert np.array_equal(values, train_labels.numpy())
    assert np.array_equal(read_table(test_path)[1], test_labels.numpy())
    if suffix == ".csv":  # the authors' layout: an index column with an empty header first
        assert train_path.read_text().splitlines()[0] == "," + ",".join(names)
    task = make_task("discovered", 4, dataset, source=str(train_path))
    assert task.name == "discovered-4"
    assert torch.equal(task.train, train_labels[:, 4]) and torch.equal(task.test, test_labels[:, 4])
    assert torch.equal(make_task("table", 4, dataset, source=str(train_path)).train, train_labels[:, 4])


def test_encoder_checkpoint_round_trip_and_discovered_kind(dataset, tmp_path):
    run = trained_run(dataset)
    train_labels, test_labels = run.labels()
    path = save_encoder(run.encoder, run.config, tmp_path / "encoder.pt")
    encoder, config = load_encoder(path)
    assert config == run.config
    for name, value in run.encoder.state_dict().items():
        assert torch.equal(value, encoder.state_dict()[name]), name
    assert "discovered" in TASK_KINDS
    task = make_task("discovered", 2, dataset, source=str(path))
    assert torch.equal(task.train, train_labels[:, 2]) and torch.equal(task.test, test_labels[:, 2])
    assert task.num_classes == 2
    with pytest.raises(TaskError, match="out of range"):
        make_task("discovered", 6, dataset, source=str(path))
    with pytest.raises(TaskError, match="source"):
        make_task("discovered", 0, dataset)


def test_labels_do_not_depend_on_batch_size(dataset):
    run = trained_run(dataset)
    from trainables.discovery import encoder_labels
    a = encoder_labels(run.encoder, run.train_images, batch_size=7)
    b = encoder_labels(run.encoder, run.train_images, batch_size=600)
    assert torch.equal(a, b)


def test_discovered_table_on_cifar10(cifar10, tmp_path):
    run = trained_run(cifar10, steps=1)
    path, _ = export_table(run.encoder, cifar10, tmp_path / "discovered.csv")
    names, values = read_table(path)
    assert values.shape == (50000, 6)
    task = make_task("discovered", 5, cifar10, source=str(path))
    assert len(task.train) == 50000 and len(task.test) == 10000
    assert 0.5 <= task.balance() < 1.0
