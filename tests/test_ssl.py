"""SSL-regulated discovery: SimCLR pretraining (lightly), a frozen pretrained backbone in the task
encoder, and pretrain -> discover -> score as one spec, with the real Ray and MLflow."""
from __future__ import annotations

import copy
import os

import pyarrow.parquet as pq
import pytest
import torch
import yaml

from discovery_fixtures import synthetic_dataset
from orchestrator.cli import main
from sweep_helpers import child_runs
from trainables.data import device_images
from trainables.config import ConfigError
from trainables.discovery import DiscoveryConfig, build_encoder
from trainables.discovery.backbone import load_backbone
from trainables.discovery.run import DiscoveryRun
from trainables.discovery.stats import closest_real_tasks, closest_tasks
from trainables.ssl import SimCLRConfig, SimCLRRun, backbone_state

TINY_SIMCLR = dict(arch="mlp", width=0.125, epochs=2, batch_size=32, train_subset=128, holdout=100, knn_images=200,
                   knn_test_images=100, proj_hidden_dim=32, proj_out_dim=16)
TINY_DISCOVERY = dict(arch="mlp", width=0.125, h_dim=4, n_linear_tasks=4, nsteps=2, inner_batch_size=32,
                      outer_batch_size=32, meta_steps=2, holdout=100, outer_pool=100, probe_size=64,
                      calibration_size=128, freeze_backbone=True, backbone_input="unit")


@pytest.fixture(scope="module")
def data():
    return synthetic_dataset(n_train=600, n_test=100, size=8)


@pytest.fixture(scope="module")
def backbone_file(data, tmp_path_factory):
    run = SimCLRRun(data, SimCLRConfig(**TINY_SIMCLR))
    run.step()
    path = tmp_path_factory.mktemp("ssl") / "backbone.pt"
    torch.save(backbone_state(run.backbone), path)
    return path


@pytest.mark.parametrize("workers", [0, 2])
def test_simclr_resumes_exactly_and_its_probe_is_an_accuracy(workers, data, one_thread):
    config = SimCLRConfig(**TINY_SIMCLR, loader_workers=workers)
    run = SimCLRRun(data, config)
    first = run.step()
    state = copy.deepcopy(run.state_dict())
    second = run.step()
    resumed = SimCLRRun(data, config)
    resumed.load_state_dict(state)
    again = resumed.step()
    assert again["pretrain/loss"] == second["pretrain/loss"] and run.done and resumed.done
    assert second["pretrain/lr"] < first["pretrain/lr"]  # the cosine schedule
    assert 0 <= second["eval/knn_acc"] <= 1
    assert all(torch.equal(a, b) for a, b in zip(run.backbone.state_dict().values(),
                                                 resumed.backbone.state_dict().values()))
    with pytest.raises(ValueError, match="differs in temperature"):
        SimCLRRun(data, SimCLRConfig(**{**TINY_SIMCLR, "temperature": 0.2}, loader_workers=workers)).load_state_dict(state)


def test_a_frozen_pretrained_backbone_stays_as_loaded(data, backbone_file, one_thread):
    config = DiscoveryConfig(**TINY_DISCOVERY, backbone_ckpt=str(backbone_file))
    train, test = device_images(data, "cpu")
    run = DiscoveryRun(train, test, config)
    loaded = torch.load(backbone_file, weights_only=True)
    before = {k: v.clone() for k, v in run.encoder.backbone.state_dict().items()}
    assert all(torch.equal(before[k], v) for k, v in loaded.items())
    proj = run.encoder.proj.weight.clone()
    run.step()
    run.labels()  # calibrates BatchNorm: the projection's, never the frozen backbone's
    assert all(torch.equal(before[k], v) for k, v in run.encoder.backbone.state_dict().items())
    assert all(p.grad is None for p in run.encoder.backbone.parameters())
    assert not torch.equal(proj, run.encoder.proj.weight)  # the projection learns
    assert set(run.encoder.trainable()) == {"proj.weight", "bn.weight"}
    # The backbone sees pixels in [0, 1]: the normalised batch is turned back into them.
    idx = torch.arange(5)
    seen = []
    hook = run.encoder.backbone.body.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    run.encoder(train.batch(idx))
    hook.remove()
    assert torch.allclose(seen[0], data.train_x[idx].float() / 255, atol=1e-5)


def test_backbone_of_another_architecture_is_refused_naming_keys(data, backbone_file):
    shape = data.image_shape
    wide = build_encoder(DiscoveryConfig(**{**TINY_DISCOVERY, "width": 0.25}), shape)
    with pytest.raises(ConfigError, match=r"shapes differ: body\.1\.bias \(128,\) vs \(256,\)"):
        load_backbone(wide, backbone_file)
    resnet = build_encoder(DiscoveryConfig(**{**TINY_DISCOVERY, "arch": "resnet18"}), shape)
    with pytest.raises(ConfigError, match=r"missing .*; unexpected body\.1\.bias"):
        load_backbone(resnet, backbone_file)


def test_closest_tasks_count_a_negation_as_the_same_task():
    labels = torch.tensor([[0, 1], [1, 1], [1, 0], [0, 0]])
    refs = torch.tensor([[1, 0, 0], [0, 0, 1], [0, 1, 1], [1, 1, 0]])  # ref 0 = NOT task 0
    index, agreement = closest_tasks(labels, refs)
    assert index[0] == 0 and agreement[0] == 1.0
    y = torch.arange(10).repeat(5)
    index, agreement = closest_real_tasks((y < 5).long()[:, None], y)
    assert agreement[0] == 1.0 and index[0] == 0  # real task 0 is classes 0-4 vs 5-9
    assert closest_real_tasks(torch.zeros(6, 1), torch.arange(6)) is None  # no real tasks on 6 classes


def ssl_spec(tmp_path, data, **changes):
    spec = {"kind": "pretrain", "name": "ssl", "dataset": {"name": "imagefolder", "root": str(data)},
            "pretrain": {**TINY_SIMCLR, "epochs": 1, "holdout": 60, "batch_size": 32, "knn_images": 100,
                         "knn_test_images": 50},
            "discovery": {k: v for k, v in TINY_DISCOVERY.items() if k not in ("arch", "width", "holdout", "outer_pool")}
            | {"holdout": 60, "outer_pool": 60, "backbone_input": "unit"},
            "steps_per_report": 1, "resources": {"cpus": 1}, "concurrency": 2,
            "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}, "output_dir": str(tmp_path / "runs"),
            "score": {"protocol": {"arch": "mlp", "width": 0.125, "epochs": 1, "batch_size": 64, "holdout": 60,
                                   "compile": "off"}, "tasks": [0], "untrained": False, "baselines": {"real": [0]}}}
    spec.update(changes)
    path = tmp_path / "ssl.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_pretrain_then_discover_then_score_is_one_command(tmp_path, tiny_dataset_tar, ray_address, capsys):
    path = ssl_spec(tmp_path, tiny_dataset_tar)
    assert main(["validate", str(path)]) == 0
    assert "then discovery on each backbone, then the score sweep" in capsys.readouterr().out
    assert main(["sweep", str(path)]) == 0
    out = capsys.readouterr().out
    assert "1/1 backbones pretrained" in out and "1/1 encoders trained" in out
    (pre,) = pq.read_table(tmp_path / "runs" / "ssl" / "pretrain.parquet").to_pylist()
    (found,) = pq.read_table(tmp_path / "runs" / "ssl-discovery" / "discovery.parquet").to_pylist()
    config = yaml.safe_load(found["config"])
    assert config["backbone_ckpt"] == pre["backbone"] and config["freeze_backbone"] and config["arch"] == "mlp"
    assert 0.5 <= found["discovery/closest_real_agreement"] <= 1  # the synthetic set has 10 classes
    closest = (tmp_path / "runs" / "ssl-discovery" / "discovered").glob("*/closest_real.csv")
    assert next(closest).read_text().startswith("task,closest_real,agreement")
    scored = pq.read_table(tmp_path / "runs" / "ssl-discovery-score" / "results.parquet").to_pylist()
    assert sorted(r["group"] for r in scored) == ["discovered", "real"]
    parents, children = child_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "ssl")  # one experiment for the chain
    assert sorted(p.info.run_name for p in parents) == ["ssl", "ssl-discovery", "ssl-discovery-score"]
    assert any(c.info.run_name == "pretrain s0" for c in children)
    saved = tmp_path / "runs" / "ssl" / "spec.yaml"  # the resolved spec reloads as the same chain
    assert main(["sweep", str(saved)]) == 0
    again = capsys.readouterr().out
    assert again.count("1 already recorded, 0 to run") == 2 and "2 already recorded, 0 to run" in again


def torch_file(path, obj):
    torch.save(obj, path)
    return str(path)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


# (case, spec changes given the inputs folder, what the one line must say)
CASES = [
    ("backbone of another width", lambda d, b: {"discovery": {**TINY_DISCOVERY, "width": 0.25, "backbone_ckpt": str(b)}},
     "shapes differ: body.1.bias"),
    ("backbone file missing", lambda d, b: {"discovery": {**TINY_DISCOVERY, "backbone_ckpt": str(d / "no.pt")}},
     "discovery.backbone_ckpt"),
    ("malicious backbone", lambda d, b: {"discovery": {**TINY_DISCOVERY, "backbone_ckpt": torch_file(d / "e.pt", Evil())}},
     "e.pt is not a readable state dict"),
    ("training checkpoint, not a state dict", lambda d, b: {
        "discovery": {**TINY_DISCOVERY, "backbone_ckpt": torch_file(d / "c.pt", {"model": {"w": torch.zeros(1)}, "epoch": 3})}},
     "c.pt is not a plain state dict"),
    ("arch set under pretraining", lambda d, b: {"pretrain": TINY_SIMCLR, "discovery": TINY_DISCOVERY},
     "discovery.arch comes from the pretraining"),
    ("normalised input on an SSL backbone", lambda d, b: {
        "pretrain": TINY_SIMCLR, "discovery": {"h_dim": 4, "n_linear_tasks": 4, "backbone_input": "dataset"}},
     "discovery.backbone_input must be unit"),
    ("score without discovery", lambda d, b: {"pretrain": TINY_SIMCLR, "discovery": None, "score": {"tasks": [0]}},
     "score: only with a discovery: section"),
    ("bad temperature", lambda d, b: {"pretrain": {**TINY_SIMCLR, "temperature": 0}}, "pretrain.temperature=0"),
]


@pytest.mark.parametrize("make, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_ssl_input_is_one_line_exit_2_nothing_written(make, message, tmp_path, tiny_dataset_tar, backbone_file,
                                                          capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    changes = make(inputs, backbone_file)
    base = {"kind": "pretrain" if "pretrain" in changes else "discovery", "name": "bad", "dataset": {"name": "imagefolder", "root": str(tiny_dataset_tar)}, "output_dir": "runs"}
    spec = {**base, **{k: v for k, v in changes.items() if v is not None}}
    path = tmp_path / "spec" / "bad.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(spec))
    for verb in ("validate", "sweep"):
        assert main([verb, str(path)]) == 2, verb
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("taskdisc: error: ") and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs", "spec"]  # no runs/, mlflow.db, mlartifacts/
    assert not (tmp_path / "pwned").exists() and not (inputs / "pwned").exists()
