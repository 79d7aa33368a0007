"""The agreement run on a small synthetic dataset: resume, early stop, results, metrics, seeds."""
from __future__ import annotations

import dataclasses
import io
import math

import pytest
import torch

from trainables.agreement_score import AgreementRun, agreement_score, split_for
from trainables.data import device_images
from trainables.data import CIFAR10_MEAN, CIFAR10_STD, ImageDataset
from trainables.pair import Pair, init_seeds
from trainables.protocol import Protocol
from trainables.labels import TaskLabels
from trainables.tasks import make_task

PROTOCOL = Protocol(arch="mlp", width=0.25, epochs=4, batch_size=64, holdout=100, eval_batch_size=70)


@pytest.fixture(scope="module")
def dataset() -> ImageDataset:
    """500 random 3x8x8 images in 10 classes; tiny, so a pair trains in well under a second."""
    g = torch.Generator().manual_seed(0)
    return ImageDataset("synthetic", torch.randint(0, 256, (500, 3, 8, 8), dtype=torch.uint8, generator=g),
                        torch.arange(500) % 10,
                        torch.randint(0, 256, (90, 3, 8, 8), dtype=torch.uint8, generator=g),
                        torch.arange(90) % 10, tuple(f"c{i}" for i in range(10)), CIFAR10_MEAN, CIFAR10_STD)


def new_run(dataset, labels, protocol=PROTOCOL, seed=0) -> AgreementRun:
    train, test = device_images(dataset, "cpu")
    return AgreementRun(train, test, labels, split_for(dataset, protocol), protocol, seed)


def comparable(result) -> dict:
    """Everything but timing, which legitimately differs between runs."""
    d = result.to_dict()
    del d["wall_s"], d["images_per_s"]
    return d


@pytest.mark.parametrize("protocol", [PROTOCOL, dataclasses.replace(PROTOCOL, arch="resnet18", width=0.125,
                                                                     compile="off", epochs=2)],
                         ids=["mlp", "resnet18"])
def test_resumed_run_equals_uninterrupted(dataset, protocol):
    labels = make_task("real", 0, dataset)
    straight = new_run(dataset, labels, protocol)
    while not straight.done:
        straight.train_epoch()

    first = new_run(dataset, labels, protocol)
    first.train_epoch()
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    resumed = new_run(dataset, labels, protocol)
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    assert resumed.epoch == 1 and not resumed.done
    while not resumed.done:
        resumed.train_epoch()
    assert comparable(resumed.result()) == comparable(straight.result())
    for a, b in zip(resumed.pair.nets.parameters(), straight.pair.nets.parameters()):
        assert torch.equal(a, b)


def test_early_stop(dataset):
    labels = make_task("real", 0, dataset)
    run = new_run(dataset, labels, dataclasses.replace(PROTOCOL, epochs=50, early_stop_acc=0.05))
    metrics = run.train_epoch()
    assert min(metrics["train/acc_0"], metrics["train/acc_1"]) >= 0.05
    assert run.done and run.epoch == 1 and run.result().epochs == 1
    never = new_run(dataset, labels, dataclasses.replace(PROTOCOL, epochs=2, early_stop_acc=1.0))
    never.train_epoch()
    assert not never.done  # random images with 1-in-2 labels are not fit in one epoch


def test_result_fields_and_namespaced_metrics(dataset):
    epochs = []
    result = agreement_score(dataset, make_task("real10", 0, dataset), PROTOCOL, reporter=epochs.append)
    assert [m["epoch"] for m in epochs] == [1, 2, 3, 4]
    assert set(epochs[0]) >= {"train/loss_0", "train/loss_1", "train/acc_0", "train/acc_1",
                              "eval/agreement", "eval/acc_0", "eval/acc_1", "perf/images_per_s"}
    assert result.task == "real10-0" and result.seed == 0 and result.epochs == 4
    assert 0 <= result.agreement <= 1 and result.agreement == epochs[-1]["eval/agreement"]
    for pair in (result.train_acc, result.holdout_acc, result.test_acc):
        assert len(pair) == 2 and all(0 <= a <= 1 for a in pair)
    assert result.balance == pytest.approx(0.1, abs=0.02)
    assert result.wall_s > 0 and result.images_per_s > 0
    metrics = result.metrics()
    assert all(k.split("/")[0] in ("train", "eval", "test", "task", "perf") for k in metrics)
    assert {"eval/agreement", "train/acc_0", "eval/acc_1", "test/acc_0", "test/acc_1"} <= set(metrics)
    assert all(isinstance(v, (int, float)) for v in metrics.values())


def test_agreement_is_measured_on_the_holdout(dataset):
    run = new_run(dataset, make_task("random", 0, dataset))
    pred = run._predict(run.train_images, run.split.holdout)
    assert pred.shape == (2, 100)
    assert run.evaluate_holdout()["eval/agreement"] == float((pred[0] == pred[1]).double().mean())


def test_table_tasks_have_nan_test_accuracy(dataset):
    labels = TaskLabels("table-x", torch.arange(500) % 2, None, 2)
    result = agreement_score(dataset, labels, dataclasses.replace(PROTOCOL, epochs=1))
    assert all(math.isnan(a) for a in result.test_acc)
    assert not any(math.isnan(a) for a in result.holdout_acc)


def _flat(net) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def test_pair_seeds_fix_the_initialisations():
    pairs = {s: Pair(PROTOCOL, 2, (3, 8, 8), init_seeds(s)) for s in (0, 1)}
    again = Pair(PROTOCOL, 2, (3, 8, 8), init_seeds(0))
    w = {s: [_flat(n) for n in p.nets] for s, p in pairs.items()}
    assert not torch.equal(w[0][0], w[0][1])  # the two networks of a pair differ
    assert not torch.equal(w[0][0], w[1][0]) and not torch.equal(w[0][1], w[1][1])  # pairs differ
    assert all(torch.equal(a, _flat(b)) for a, b in zip(w[0], again.nets))  # same seed, same init
    assert len(set(init_seeds(0) + init_seeds(1) + init_seeds(2))) == 6


def test_pair_init_does_not_touch_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    Pair(PROTOCOL, 2, (3, 8, 8), init_seeds(5))
    assert torch.equal(torch.rand(3), expected)


def test_cross_architecture_pair(dataset):
    """The authors' cross-AS: the pair's second network is another architecture, named in the run."""
    protocol = dataclasses.replace(PROTOCOL, arch2="resnet18", width=0.125, epochs=2, compile="off")
    assert protocol.archs == ("mlp", "resnet18") and protocol.pair_name == "mlp+resnet18"
    run = new_run(dataset, make_task("real", 0, dataset), protocol)
    assert [type(n).__name__ for n in run.pair.nets] == ["MLP", "CifarResNet"]
    while not run.done:
        run.train_epoch()
    assert 0 <= run.result().agreement <= 1
    assert PROTOCOL.identity() == {k: v for k, v in dataclasses.asdict(PROTOCOL).items() if k != "arch2"}
    assert "arch2" in protocol.identity()  # a cross pair is another protocol point; an off arch2 changes no key
