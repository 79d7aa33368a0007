"""Split sweeps through the CLI with the real Ray and MLflow: adversarial and random splits side by side."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from orchestrator.cli import MAX_TRIALS, load_any, main, prepare
from orchestrator.specs.io import SpecError
from sweep_helpers import child_runs
from trainables.discovery import write_table
from trainables.splits import TrainTestSplit
from trainables.splits.files import NO_TARGET, read_splits, write_single_split, write_splits

N_TRAIN = 300  # the tiny dataset: 10 classes x 30 training images


def split_spec(tmp_path, data, name="adv", **splits) -> str:
    spec = {"kind": "splits", "name": name, "dataset": {"name": "imagefolder", "root": str(data)},
            "protocol": {"arch": "mlp", "width": 0.125, "epochs": 2, "batch_size": 64, "compile": "off"},
            "splits": {"targets": {"kind": "real", "indices": [0, 5]}, "half": 1, **splits},
            "seeds": [0], "resources": {"cpus": 1}, "concurrency": 2,
            "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}, "output_dir": str(tmp_path / "runs")}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def rule_table(tmp_path) -> str:
    """Two 'discovered' tasks: colour-like rules that cut across the real tasks' classes."""
    classes = np.arange(N_TRAIN) // 30
    labels = np.stack([(classes % 2 == 0), (classes >= 3) & (classes < 8)], axis=1).astype(np.int64)
    return str(write_table(labels, tmp_path / "rules.parquet"))


def test_cli_trains_adversarial_and_random_splits(tmp_path, tiny_dataset_tar, ray_address, capsys):
    path = split_spec(tmp_path, tiny_dataset_tar, rules={"discovered": {"path": rule_table(tmp_path),
                                                                        "indices": [1]}}, networks=2)
    assert main(["sweep", path]) == 0  # in-process: the CLI's own code, without a new interpreter
    out = capsys.readouterr().out
    # 2 targets x (1 adversarial + 1 random of the same sizes + 1 half) = 6 trials
    assert out.count("] adv__") == 6 and "adversarial" in out and "half" in out

    rows = list(csv.DictReader(open(tmp_path / "runs" / "adv" / "split_table.csv")))
    assert len(rows) == 6
    by_kind = {}
    for r in rows:
        by_kind.setdefault((r["target"], r["split_index"], r["group"]), r)
    for target in ("real-0", "real-5"):
        for i in ("1",):
            adv, rnd = by_kind[(target, i, "adversarial")], by_kind[(target, i, "random")]
            assert (adv["train_size"], adv["test_size"]) == (rnd["train_size"], rnd["test_size"])
            assert int(adv["train_size"]) + int(adv["test_size"]) == N_TRAIN
        assert by_kind[(target, "0", "half")]["test_size"] == "150"
    assert all(0 <= float(r["test_acc"]) <= 1 and 0 <= float(r["agreement"]) <= 1 for r in rows)

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parents, children = child_runs(uri, "adv")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and len(children) == 6
    client = MlflowClient(tracking_uri=uri)
    assert {"split_table.csv", "split_results.parquet", "split_accuracy_target.png", "spec.yaml"} <= {
        a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert "splits/target/adversarial/mean_test_acc" in parents[0].data.metrics
    assert "splits/target/real-0/random/mean_test_acc" in parents[0].data.metrics
    run = next(c for c in children if c.info.run_name == "real-5 adversarial-1 s0")
    assert run.data.tags["taskdisc.run"] == "adv__real-5__adversarial-1__seed0"
    assert run.inputs.dataset_inputs[0].dataset.name == "real-5"  # the labels it trained on
    assert {"eval/acc_0", "eval/agreement", "split/train_size", "train/acc_1"} <= set(run.data.metrics)
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == [f"{run.data.params['key']}.png"]

    # Every split of the sweep, in the authors' layout, one file per family, also on the parent run.
    exported = read_splits(tmp_path / "runs" / "adv" / "splits" / "adversarial.torch", n_images=N_TRAIN)
    assert sorted(exported) == [0, 5] and len(exported[5]) == 1
    assert exported[5][0].sizes == (int(by_kind[("real-5", "1", "adversarial")]["train_size"]),
                                    int(by_kind[("real-5", "1", "adversarial")]["test_size"]))
    assert {"splits/adversarial.torch", "splits/random.parquet", "splits/half.torch"} <= {
        a.path for a in client.list_artifacts(parents[0].info.run_id, "splits")}

    capsys.readouterr()
    assert main(["results", str(tmp_path / "runs" / "adv")]) == 0  # in-process: the same CLI, no start-up
    out = capsys.readouterr().out
    assert "adversarial" in out and "test acc" in out
    assert main(["sweep", path]) == 0 and "6 already recorded, 0 to run" in capsys.readouterr().out


def test_split_files_train_10_way(tmp_path, tiny_dataset_tar, ray_address):
    from orchestrator.launch import run_sweep
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(N_TRAIN, generator=g)
    file = write_splits(tmp_path / "cifar_splits.torch", {5: [TrainTestSplit(perm[:200], perm[200:])]})
    path = split_spec(tmp_path, tiny_dataset_tar, name="files", file=str(file), random=False, half=0,
                      labels=["classes"], targets={"kind": "real", "indices": [5]})
    [(_, [row])] = run_sweep(load_any(path, []))
    assert (row["run_name"], row["train_size"], row["test_size"]) == ("files__real-5__file-0__10way__seed0", 200, 100)
    assert row["labels"] == "classes" and 0 <= row["test_acc"] <= 1


def _bad(tmp_path, data, **splits) -> str:
    return split_spec(tmp_path, data, name=f"bad{len(list(tmp_path.glob('bad*.yaml')))}", **splits)


def test_bad_split_specs_fail_before_anything_is_written(tmp_path, tiny_dataset_tar, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = rule_table(tmp_path)
    five = np.tile(np.arange(5), N_TRAIN // 5)[:, None]
    write_table(five, tmp_path / "five.parquet")
    write_table(np.zeros((100, 1), dtype=np.int64), tmp_path / "short.parquet")
    write_single_split(tmp_path / "range.torch", TrainTestSplit(torch.arange(10), torch.tensor([5000])))
    write_single_split(tmp_path / "overlap.torch", TrainTestSplit(torch.arange(10), torch.arange(5, 20)))
    torch.save({"x": 1}, tmp_path / "layout.torch")
    cases = {
        "range.torch": _bad(tmp_path, tiny_dataset_tar, file=str(tmp_path / "range.torch"),
                            targets={"kind": "real", "indices": [0]}),
        "in both train and test": _bad(tmp_path, tiny_dataset_tar, file=str(tmp_path / "overlap.torch"),
                                       targets={"kind": "real", "indices": [0]}),
        "not a target task index": _bad(tmp_path, tiny_dataset_tar, file=str(tmp_path / "layout.torch")),
        "one split with no target": _bad(tmp_path, tiny_dataset_tar, file=str(tmp_path / "overlap.torch")),
        "outside 0..1": _bad(tmp_path, tiny_dataset_tar, rules={"table": {"path": str(tmp_path / "five.parquet"),
                                                                          "indices": [0]}}),
        "has 100 rows": _bad(tmp_path, tiny_dataset_tar, rules={"discovered": {"path": str(tmp_path / "short.parquet"),
                                                                                "indices": [0]}}),
        "not binary": _bad(tmp_path, tiny_dataset_tar, targets={"kind": "real10", "indices": [0]},
                           rules={"discovered": {"path": table, "indices": [0]}}),
        "either rules": _bad(tmp_path, tiny_dataset_tar),
        "splits.labels": _bad(tmp_path, tiny_dataset_tar, labels=["ten"], rules={"random": [0]}),
    }
    for message, path in cases.items():
        with pytest.raises(SpecError, match=message) as e:
            prepare(path, [], MAX_TRIALS)
        assert "\n" not in str(e.value)
    for message in ("range.torch", "outside 0..1"):  # the CLI path: one line, exit 2
        assert main(["sweep", cases[message]]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


def test_cli_random_network_split_then_training(tmp_path, tiny_dataset_tar, ray_address):
    spec = {"kind": "randnet", "name": "rn", "dataset": {"name": "imagefolder", "root": str(tiny_dataset_tar)},
            "randnet": {"arch": "resnet18", "width": 0.125, "image_size": None, "batch_size": 64,
                        "batches_per_step": 2, "decode_threads": 1},
            "splits": {"half": 0, "networks": 1, "seeds": [0],
                       "protocol": {"arch": "mlp", "width": 0.125, "epochs": 1, "batch_size": 64, "compile": "off"}},
            "resources": {"cpus": 1}, "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
            "output_dir": str(tmp_path / "runs")}
    path = tmp_path / "rn.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["sweep", str(path)]) == 0
    export = next((tmp_path / "runs" / "rn" / "randnet").iterdir())
    split = read_splits(export / "adv-split.torch", n_images=N_TRAIN)[NO_TARGET][0]
    assert split.sizes == (150, 150)  # half of every class in train, and half of the classes flipped
    assert len(np.load(export / "target.npy")[0]) == 5
    partition = (export / "partition.csv").read_text().splitlines()
    assert partition[0] == "image_id,partition" and len(partition) == N_TRAIN + 1
    assert partition[1].startswith("train/class0/0000.png,")
    rows = list(csv.DictReader(open(tmp_path / "runs" / "rn-splits" / "split_table.csv")))
    assert sorted(r["group"] for r in rows) == ["adversarial", "random"]
    adv = next(r for r in rows if r["group"] == "adversarial")
    assert (adv["target"], adv["train_size"], adv["test_size"]) == ("classes-0", "150", "150")
    _, children = child_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "rn")
    assert "randnet s0" in {c.info.run_name for c in children}


def test_shipped_randnet_specs_load(tiny_dataset_tar, monkeypatch):
    from orchestrator.kinds.randnet.spec import RandnetSpec
    from sweep_helpers import REPO
    imagenet = load_any(REPO / "specs" / "randnet-imagenet.yaml", [f"dataset.root={tiny_dataset_tar}"])
    assert isinstance(imagenet, RandnetSpec) and imagenet.splits is None
    c = imagenet.configs[0]
    assert (c.arch, c.image_size, imagenet.resources.gpus) == ("resnet50", 224, 1)
    cpu = load_any(REPO / "specs" / "randnet-cifar-cpu.yaml", [f"dataset.root={tiny_dataset_tar}"])
    assert cpu.resources.gpus == 0 and cpu.splits.plan.random
    monkeypatch.delenv("TASKDISC_CIFAR10", raising=False)  # CIFAR-10 by download: no image folder to stream
    with pytest.raises(SpecError, match="streams an image folder"):
        load_any(REPO / "specs" / "randnet-cifar-cpu.yaml", ["dataset.name=cifar10", "dataset.root=null",
                                                             "dataset.download=true"])
