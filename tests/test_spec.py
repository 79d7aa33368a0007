"""Spec loading and validation: every shipped spec, grids, overrides, and one-line errors."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from orchestrator.cli import main
from orchestrator.kinds import load_spec, spec_data
from orchestrator.specs.indices import parse_indices
from orchestrator.specs.io import SpecError
from conftest import needs_cifar10
from sweep_helpers import REPO
from tiny_imagenet_fixtures import tree_of_200
from trainables.protocol import Protocol

SPECS = sorted((REPO / "specs").glob("*.yaml"))


# Shipped specs for data a user brings (ImageNet, the authors' task file): validated on stand-ins.
USER_DATA = {"randnet-imagenet.yaml", "randnet-cifar-cpu.yaml"}
AUTHORS_FILES = {"paper-discovered.yaml"}
TINY_IMAGENET = {"tiny-imagenet-human.yaml"}


def authors_discovered_csv(path, rows: int = 50_000) -> str:
    """A file in the layout of the authors' discovered.csv (check_as.py reads it by column name):
    an index column, then one 0/1 column per task, one row per CIFAR-10 training image."""
    names = [f"{arch}-{i}" for arch, n in (("resnet18", 32), ("mlp", 32), ("vit", 32), ("resnet18_d8", 8))
             for i in range(n)]
    r = np.arange(rows)[:, None]
    values = np.concatenate([r, (r + np.arange(len(names))) % 2], axis=1)
    np.savetxt(path, values, fmt="%d", delimiter=",", header=",".join(["", *names]), comments="")
    return str(path)


@needs_cifar10  # validate decodes the dataset and checks every task file against it
@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_every_shipped_spec_validates(path, capsys, tiny_dataset_tar, tmp_path):
    overrides = ["--set", f"dataset.root={tiny_dataset_tar}"] if path.name in USER_DATA else []
    if path.name in AUTHORS_FILES:
        csv = authors_discovered_csv(tmp_path / "discovered.csv")
        overrides = [a for s in ("resnet18", "mlp", "vit") for a in ("--set", f"tasks.{s}.path={csv}")]
    if path.name in TINY_IMAGENET:  # a 200-class stand-in and class sets in the authors' (5, 100) layout
        np.save(tmp_path / "human.npy", np.stack([np.arange(100) * 2 + i % 2 for i in range(5)]))
        overrides = ["--set", f"dataset.root={tree_of_200(tmp_path / 't.zip')}",
                     "--set", f"tasks.human.path={tmp_path / 'human.npy'}"]
    assert main(["validate", str(path), *overrides]) == 0
    assert "valid spec" in capsys.readouterr().out


def test_authors_discovered_tasks_are_selected_by_name(tmp_path):
    csv = authors_discovered_csv(tmp_path / "discovered.csv")
    spec = load_spec(REPO / "specs" / "paper-discovered.yaml", [f"tasks.{s}.path={csv}" for s in ("resnet18", "mlp", "vit")])
    sets = {ts.group: ts for ts in spec.tasks}
    assert sets["resnet18"].indices == tuple(range(32)) and sets["vit"].indices == tuple(range(64, 96))
    assert len(spec.trials()) == 96
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"kind: agreement\nname: b\ntasks: {{t: {{kind: table, path: {csv}, columns: 'convnext-*'}}}}\n")
    with pytest.raises(SpecError, match="'convnext-\\*' matches no column of .*resnet18-0, resnet18-1"):
        load_spec(bad)


def test_quickstart_runs_real_and_random_tasks():
    spec = load_spec(REPO / "specs" / "quickstart.yaml")
    kinds = {t.kind for t in spec.trials()}
    assert kinds == {"real", "random"} and spec.protocols[0].arch == "mlp"


def test_paper_spec_is_the_papers_protocol():
    spec = load_spec(REPO / "specs" / "paper-as.yaml")
    assert {p.arch for p in spec.protocols} == {"resnet18", "mlp", "vit"}
    for p in spec.protocols:
        assert (p.epochs, p.batch_size, p.lr, p.optimizer, p.holdout, p.width) == (100, 512, 1e-3, "adam", 5000, 1.0)
    assert len(spec.trials()) == 3 * (126 + 32)


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


BASE = {"kind": "agreement", "name": "t", "tasks": {"real": "0-1"}, "protocol": {"arch": "mlp"}}


def test_grid_overrides_and_deterministic_names(tmp_path):
    spec = load_spec(write(tmp_path, BASE), ["protocol.width=[0.5, 1.0]", "seeds=[0, 3]", "protocol.epochs=2"])
    trials = spec.trials()
    assert len(trials) == 2 * 2 * 2
    names = [t.run_name for t in trials]
    assert len(set(names)) == len(names)
    assert "t__real-0__seed3__width-0.5" in names
    assert [t.run_name for t in load_spec(write(tmp_path, BASE), ["protocol.width=[0.5, 1.0]", "seeds=[0, 3]",
                                                                  "protocol.epochs=2"]).trials()] == names
    assert len({t.key for t in trials}) == len(trials)
    assert all(p.epochs == 2 for p in spec.protocols)


def test_precision_auto_is_bf16_on_a_gpu_and_fp32_elsewhere(tmp_path):
    assert Protocol().on("cuda:1").precision == "bf16" and Protocol().on("cpu").precision == "fp32"
    assert Protocol(precision="fp32").on("cuda").precision == "fp32"
    cpu, gpu = load_spec(write(tmp_path, BASE)), load_spec(write(tmp_path, {**BASE, "resources": {"gpus": 1}}))
    assert cpu.protocols[0].precision == "fp32" and gpu.protocols[0].precision == "bf16"
    fp32 = load_spec(write(tmp_path, {**BASE, "protocol": {"arch": "mlp", "precision": "fp32"}}))
    assert [t.key for t in cpu.trials()] == [t.key for t in fp32.trials()]  # keys of sweeps recorded before auto
    assert spec_data(gpu)["protocol"]["precision"] == "bf16"  # the saved spec says what ran
    both = {**BASE, "protocol": {"arch": "mlp", "precision": ["auto", "bf16"]}, "resources": {"gpus": 1}}
    with pytest.raises(SpecError, match=r"protocol points #1 and #2 are the same on cuda \(precision auto is bf16"):
        load_spec(write(tmp_path, both))
    study = {**BASE, "fidelity": {"candidates": {"bf16": {"precision": "bf16"}}}}
    assert load_spec(write(tmp_path, study)).protocols[0].precision == "fp32"
    with pytest.raises(SpecError, match="protocol points reference and bf16 are the same on cuda"):
        load_spec(write(tmp_path, {**study, "resources": {"gpus": 1}}))


def test_paths_are_stored_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "table.csv").write_text(",a\n0,1\n")
    (tmp_path / "data.tar.gz").write_bytes(b"")  # checked to exist, not read, at load time
    spec = load_spec(write(tmp_path, {**BASE, "tasks": {"table": {"path": "table.csv", "columns": "0"}},
                                      "output_dir": "out", "dataset": {"root": "data.tar.gz"}}))
    assert spec.output_dir == str(tmp_path / "out")
    assert spec.tasks[0].source == str(tmp_path / "table.csv")
    assert spec.dataset.root == str(tmp_path / "data.tar.gz")
    assert spec.tracking.uri == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_indices():
    assert parse_indices("0-3,7", "k", "f") == (0, 1, 2, 3, 7)
    assert parse_indices([1, "4-5"], "k", "f") == (1, 4, 5)
    assert parse_indices(9, "k", "f") == (9,)
    for bad in ("3-1", "a", "1,1", True):
        with pytest.raises(SpecError):
            parse_indices(bad, "k", "f")


@pytest.mark.parametrize("data, message", [
    ({**BASE, "colour": 1}, "unknown key colour"),
    ({**BASE, "protocol": {"arch": "mlp", "lr": "fast"}}, "protocol.lr='fast' is invalid: expected a number"),
    ({**BASE, "protocol": {"arch": "mlp", "early_stop_acc": 1.5}}, "protocol.early_stop_acc=1.5"),
    ({**BASE, "protocol": {"arch": "mlp", "compile": True}}, "protocol.compile=True"),
    ({**BASE, "resources": {"cpus": 0}}, "resources.cpus=0.0 is invalid: expected a value > 0"),
    ({**BASE, "tasks": {"nonsense": 1}}, "unknown task kind tasks.nonsense"),
    ({**BASE, "tasks": {"table": {"path": "/no/such.csv", "columns": 0}}}, "tasks.table.source='/no/such.csv'"),
    ({**BASE, "dataset": {"name": "mnist"}}, "dataset.name='mnist'"),
    ({**BASE, "name": "bad name"}, "name='bad name'"),
    ({"kind": "agreement", "name": "t"}, "missing key tasks"),
    ({**BASE, "seeds": "3-1"}, "seeds='3-1' is invalid: expected indices like 0-125"),
])
def test_bad_specs_name_the_key(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert message in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_bad_yaml_and_missing_file_exit_2(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    assert main(["validate", str(broken)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["sweep", str(broken), "--set", "novalue"]) == 2


def test_cluster_yaml_validates_with_rays_schema(tmp_path, capsys):
    assert main(["validate", str(REPO / "cluster.yaml")]) == 0
    assert "valid Ray cluster config" in capsys.readouterr().out
    cluster = yaml.safe_load((REPO / "cluster.yaml").read_text())
    assert any("--dashboard-host=127.0.0.1" in c for c in cluster["head_start_ray_commands"])
    assert cluster["available_node_types"]["gpu_worker"]["min_workers"] == 0
    cluster["available_node_types"]["gpu_worker"]["max_workers"] = "many"
    bad = tmp_path / "cluster.yaml"
    bad.write_text(yaml.safe_dump(cluster))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not a valid Ray cluster config" in err and len(err.strip().splitlines()) == 1


def test_named_task_sets_pick_their_kind(tmp_path):
    (tmp_path / "t.csv").write_text(",a,b\n0,1,0\n1,0,1\n")
    spec = load_spec(write(tmp_path, {**BASE, "tasks": {
        "real": 0, "mine": {"kind": "table", "path": str(tmp_path / "t.csv"), "columns": "0-1"}}}))
    trials = spec.trials()
    assert sorted((t.group, t.kind, t.index) for t in trials) == [
        ("mine", "table", 0), ("mine", "table", 1), ("real", "real", 0)]
    assert "t__mine-0__seed0" in {t.run_name for t in trials}
    with pytest.raises(SpecError, match=r"tasks.mine.kind='nope'"):
        load_spec(write(tmp_path, {**BASE, "tasks": {"mine": {"kind": "nope", "indices": 0}}}))


@pytest.mark.parametrize("tasks, message", [
    ({"real": "120-126"}, "tasks.real.indices includes 126: real tasks are 0..125"),
    ({"real10": [1]}, "tasks.real10.indices includes 1"),
])
def test_task_indices_are_checked_before_anything_runs(tmp_path, tasks, message):
    with pytest.raises(SpecError, match=message):
        load_spec(write(tmp_path, {**BASE, "tasks": tasks}))


def test_table_indices_are_checked_against_the_file(tmp_path):
    (tmp_path / "t.csv").write_text(",a,b\n0,1,0\n1,0,1\n")
    with pytest.raises(SpecError, match=r"tasks.table.indices includes 2: table tasks of .*t.csv are 0..1"):
        load_spec(write(tmp_path, {**BASE, "tasks": {"table": {"path": str(tmp_path / "t.csv"), "columns": "0-2"}}}))


def test_missing_dataset_fails_before_anything_is_written(tmp_path, capsys):
    path = write(tmp_path, {**BASE, "dataset": {"root": str(tmp_path / "nowhere.tar.gz")}, "output_dir": str(tmp_path / "runs")})
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no CIFAR-10 at" in err and "nowhere.tar.gz" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists() and not (tmp_path / "nowhere.tar.gz").exists()


def test_results_do_not_depend_on_where_the_data_lives(tmp_path, tiny_dataset_tar):
    import shutil
    copy = shutil.copy(tiny_dataset_tar, tmp_path / "elsewhere.tar.gz")
    keys = [{t.key for t in load_spec(write(tmp_path, {**BASE, "dataset": {"name": "imagefolder", "root": str(root)},
                                                       "tasks": {"random": "0-1"}})).trials()}
            for root in (tiny_dataset_tar, copy)]
    assert keys[0] == keys[1]


def test_fields_documents_every_spec_field(capsys):
    assert main(["fields"]) == 0
    out = capsys.readouterr().out
    for f in dataclasses.fields(Protocol):
        assert f"  {f.name} = " in out and f.metadata["doc"] in out
