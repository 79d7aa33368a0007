"""TinyImageNet from its original layout (folder, .zip, .tar.gz), its class-set tasks, and its bad input,
on synthetic trees (tiny_imagenet_fixtures)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from orchestrator.cli import main
from trainables.agreement_score import agreement_score
from trainables.data import DatasetError, dataset_identity, load_dataset
from trainables.protocol import Protocol
from trainables.tasks import make_task
from tiny_imagenet_fixtures import WNIDS, members, png, tree_of_200, write_folder, write_tar, write_zip

REPO = Path(__file__).resolve().parents[1]
AUTHORS = REPO.parent / "shared" / "data" / "paper_tiny_imagenet_binary_tasks.npy"  # (5, 100) class ids


WRITERS = {"folder": lambda d, f: write_folder(d / "tiny-imagenet-200", f),
           "zip": lambda d, f: write_zip(d / "tiny-imagenet-200.zip", f),
           "tar.gz": lambda d, f: write_tar(d / "tiny.tar.gz", f)}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKDISC_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TASKDISC_TINY_IMAGENET", raising=False)
    return tmp_path / "cache"


@pytest.mark.parametrize("form", sorted(WRITERS))
@pytest.mark.parametrize("size", [32, 64])
def test_reads_the_original_layout_in_wnids_order(form, size, tmp_path, cache):
    root = WRITERS[form](tmp_path, members())
    ds = load_dataset("tiny-imagenet", str(root), image_size=size)
    assert ds.classes == WNIDS and ds.name == "tiny-imagenet"
    assert ds.train_x.shape == (12, 3, size, size) and ds.test_x.shape == (8, 3, size, size)
    assert ds.train_y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]  # sorted by (class, file name)
    assert ds.train_x[:, 0, 0, 0].tolist() == [10 * c + k for c in range(4) for k in range(3)]
    assert ds.test_y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert ds.test_x[:, 0, 0, 0].tolist() == [100 + 10 * c + k for c in range(4) for k in range(2)]
    x = ds.train_x.float().div(255)  # statistics measured on train, as for any dataset without published ones
    assert ds.mean == pytest.approx(x.mean((0, 2, 3)).tolist()) and ds.std == pytest.approx(x.std((0, 2, 3)).tolist())
    assert len(list(cache.iterdir())) == 1  # decoded once into one entry
    again = load_dataset("tiny-imagenet", str(root), image_size=size)
    assert torch.equal(again.train_x, ds.train_x) and len(list(cache.iterdir())) == 1


def test_sizes_are_separate_entries_and_identities(tmp_path, cache):
    root = write_zip(tmp_path / "t.zip", members())
    ids = {dataset_identity("tiny-imagenet", str(root), image_size=s) for s in (None, 32, 64)}
    assert len(ids) == 2 and all(i.startswith("tiny-imagenet:") for i in ids)
    for s in (32, 64):
        load_dataset("tiny-imagenet", str(root), image_size=s)
    assert sorted(p.name.split("-")[2] for p in cache.iterdir()) == ["32px", "64px"]


def test_resizing_is_bilinear_not_a_crop(tmp_path):
    files = members(train=1, val=1)
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, 32:] = 200  # left half dark, right half bright: a crop or nearest pick would differ
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    files["train/n03/images/n03_0.JPEG"] = buf.getvalue()
    ds = load_dataset("tiny-imagenet", str(write_folder(tmp_path / "t", files)), image_size=32)
    row = ds.train_x[0, 0, 0]
    assert row[:15].eq(0).all() and row[17:].eq(200).all() and ds.train_x.shape[-1] == 32


def test_the_root_from_the_environment_or_the_cache(tmp_path, cache, monkeypatch):
    with pytest.raises(DatasetError, match=r"no TinyImageNet at .*tiny-imagenet-200 or .*tiny-imagenet-200\.zip"
                                           r".*dataset\.root or \$TASKDISC_TINY_IMAGENET"):
        dataset_identity("tiny-imagenet", None)
    cache.mkdir()
    write_zip(cache / "tiny-imagenet-200.zip", members())
    assert len(load_dataset("tiny-imagenet").classes) == 4
    write_folder(tmp_path / "elsewhere" / "tiny-imagenet-200", members(wnids=("n9", "n8")))
    monkeypatch.setenv("TASKDISC_TINY_IMAGENET", str(tmp_path / "elsewhere"))  # the folder holding the tree
    assert load_dataset("tiny-imagenet").classes == ("n9", "n8")


def test_the_authors_class_sets_on_200_classes(tmp_path, one_thread):
    """The authors' .npy rows (100 of 200 class ids) label a 200-class set half and half, train and test."""
    ds = load_dataset("tiny-imagenet", str(tree_of_200(tmp_path / "t.zip")), image_size=8)
    source = AUTHORS if AUTHORS.is_file() else tmp_path / "human.npy"  # the authors' file where it is at hand
    if not AUTHORS.is_file():
        np.save(source, np.stack([np.random.default_rng(i).permutation(200)[:100] for i in range(5)]))
    rows = np.load(source)
    for i in range(5):
        labels = make_task("classes", i, ds, source=str(source))
        assert labels.train.sum() == 100 and labels.balance() == 0.5
        assert set(torch.nonzero(labels.test).flatten().tolist()) == set(rows[i].tolist())  # one val image a class
    result = agreement_score(ds, labels, Protocol(arch="mlp", width=0.125, epochs=1, batch_size=64, holdout=40,
                                                  compile="off"))
    assert 0 <= result.agreement <= 1 and result.epochs == 1


def spec(tmp_path: Path, root, tasks=None, **dataset) -> Path:
    path = tmp_path / "spec" / "tiny.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump({
        "kind": "agreement", "name": "tiny", "dataset": {"name": "tiny-imagenet", "root": str(root), **dataset},
        "protocol": {"arch": "mlp", "width": 0.125, "epochs": 1, "batch_size": 8, "holdout": 4, "compile": "off"},
        "tasks": tasks or {"random": [0]}, "resources": {"cpus": 1}, "output_dir": "runs"}))
    return path


def test_the_shipped_spec_validates_on_a_synthetic_tree(tmp_path, monkeypatch, capsys):
    root = tree_of_200(tmp_path / "t.zip")
    np.save(tmp_path / "human.npy", np.stack([np.arange(100) + i for i in range(5)]))
    monkeypatch.chdir(tmp_path)
    assert main(["validate", str(REPO / "specs" / "tiny-imagenet-human.yaml"), "--set", f"dataset.root={root}",
                 "--set", f"tasks.human.path={tmp_path / 'human.npy'}"]) == 0
    assert "30 trials" in capsys.readouterr().out


def _without(files: dict, name: str) -> dict:
    return {k: v for k, v in files.items() if k != name}


def truncated(folder: Path, archive: Path) -> Path:
    cut = folder / f"cut-{archive.name}"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    return cut


# (case, root maker given the tmp folder, extra spec keys, what the one line must say)
BAD = [
    ("no val annotations", lambda d: write_folder(d / "t", _without(members(), "val/val_annotations.txt")), {},
     "has no val/val_annotations.txt"),
    ("no val annotations in a zip", lambda d: write_zip(d / "t.zip", _without(members(), "val/val_annotations.txt")),
     {}, "no val/val_annotations.txt (TinyImageNet's val labels)"),
    ("annotation of an unknown wnid", lambda d: write_folder(d / "t", {**members(), "val/val_annotations.txt":
                                                                      b"val_0_0.JPEG\tn77\t0\t0\t1\t1\n"}), {},
     "line 1 names 'n77', which is not in wnids.txt"),
    ("train class not in wnids.txt", lambda d: write_folder(d / "t", {**members(), "train/n99/images/x.JPEG": png(1, 64)}),
     {}, "train/n99/ is not a class of wnids.txt"),
    ("wnids.txt with a repeat", lambda d: write_folder(d / "t", {**members(), "wnids.txt": b"n03\nn01\nn04\nn02\nn01\n"}),
     {}, "wnids.txt must list distinct class ids"),
    ("a class without training images", lambda d: write_zip(d / "t.zip", {**members(), "wnids.txt": b"n03\nn01\nn04\nn02\nn05\n"}),
     {}, "no training images of 1 wnids.txt classes (first: train/n05/images/)"),
    ("annotated image missing", lambda d: write_folder(d / "t", _without(members(), "val/images/val_3_1.JPEG")), {},
     "val/val_annotations.txt lists 1 images val/images/ lacks (first: val_3_1.JPEG)"),
    ("image of another size", lambda d: write_tar(d / "t.tar.gz", {**members(), "train/n02/images/n02_1.JPEG": png(1, 32)}),
     {}, "train/n02/images/n02_1.JPEG is 32x32, the other images 64x64"),
    ("undecodable image", lambda d: write_zip(d / "t.zip", {**members(), "val/images/val_1_1.JPEG": b"not a jpeg"}), {},
     "cannot decode image"),
    ("empty zip file", lambda d: (d / "t.zip").write_bytes(b"") or d / "t.zip", {}, "not a readable archive"),
    ("zip of nothing", lambda d: write_zip(d / "t.zip", {}), {}, "no wnids.txt"),
    ("truncated zip", lambda d: truncated(d, write_zip(d / "t.zip", members())), {}, "not a readable archive"),
    ("truncated tar.gz", lambda d: truncated(d, write_tar(d / "t.tgz", members())), {}, "not a readable archive"),
    ("missing root", lambda d: d / "nowhere", {}, "no TinyImageNet at"),
    ("class set out of range", lambda d: write_folder(d / "t", members()),
     {"tasks": {"human": {"kind": "classes", "path": "CLASSES", "indices": "0-1"}}},
     "row 1 must list distinct class ids in 0..3"),
    ("class-set row beyond the file", lambda d: write_folder(d / "t", members()),
     {"tasks": {"human": {"kind": "classes", "path": "CLASSES", "indices": "0-5"}}}, "are 0..1"),
    ("image size too small", lambda d: write_folder(d / "t", members()), {"image_size": 2},
     "dataset.image_size=2 is invalid"),
]


@pytest.mark.parametrize("make, extra, message", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_is_one_line_exit_2_nothing_written(make, extra, message, tmp_path, cache, capsys, monkeypatch):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    np.savetxt(inputs / "classes.txt", np.array([[0, 1], [2, 4]]), fmt="%d")  # class 4 of a 4-class set
    extra = yaml.safe_load(yaml.safe_dump(extra).replace("CLASSES", str(inputs / "classes.txt")))
    tasks = extra.pop("tasks", None)
    path = spec(tmp_path, make(inputs), tasks, **extra)
    monkeypatch.chdir(tmp_path)
    for verb in ("validate", "sweep"):
        assert main([verb, str(path)]) == 2, verb
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("taskdisc: error: ") and message in err[0], err
    # no runs/, mlflow.db or mlartifacts/; a cache entry only of a good dataset (a bad task set), and whole
    names = {p.name for p in tmp_path.iterdir()}
    assert names - {"cache"} == {"inputs", "spec"} and ("cache" not in names or tasks)
    assert all((e / "meta.json").is_file() for e in (cache.iterdir() if cache.exists() else ()))


def test_image_size_is_refused_where_nothing_is_resized(tmp_path, tiny_dataset_tar, capsys):
    from sweep_helpers import tiny_spec
    path = tiny_spec(tmp_path, tiny_dataset_tar, **{"dataset.image_size": 32})
    assert main(["validate", str(path)]) == 2
    assert "imagefolder: dataset.image_size=32, but only tiny-imagenet is resized" in capsys.readouterr().err
