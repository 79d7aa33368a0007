"""Bad input of every kind the product was seen to fail on: one line, exit 2, nothing written.

Each case runs `taskdisc sweep` in-process on the synthetic dataset: the checks run in the driver
before Ray starts, so a case that got past them would start Ray and write runs/ and mlflow.db.
"""
from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from orchestrator.cli import main
from sweep_helpers import tiny_spec

N_TRAIN = 300  # images in tiny_dataset_tar's training part (10 classes x 30)


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def pt(path, obj) -> str:
    torch.save(obj, path)
    return str(path)


def png(size: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def tarball(path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def images(n_train: int = 2, bad: dict[str, bytes] | None = None) -> dict[str, bytes]:
    out = {f"{part}/c{c}/{i}.png": png(8) for part in ("train", "test") for c in (0, 1) for i in range(n_train)}
    return {**out, **(bad or {})}


def table(path, rows: int, high: int = 1) -> str:
    np.savetxt(path, np.arange(rows * 2).reshape(rows, 2) % (high + 1), fmt="%d", delimiter=",",
               header="a,b", comments="")
    return str(path)


def truncated(path, source) -> str:
    data = open(source, "rb").read()
    path.write_bytes(data[: len(data) // 2])
    return str(path)


# (case, overrides given the tmp folder and the dataset, what the one line must say)
CASES = [
    ("nan lr", lambda d, data: ["protocol.lr=.nan"], "protocol.lr=nan is invalid"),
    ("inf width", lambda d, data: ["protocol.width=.inf"], "protocol.width=inf is invalid"),
    ("huge epochs", lambda d, data: ["protocol.epochs=99999999999999999999999"], "protocol.epochs="),
    ("name ..", lambda d, data: ["name=.."], "name='..' is invalid"),
    ("name .", lambda d, data: ["name=."], "name='.' is invalid"),
    ("long name", lambda d, data: ["name=" + "a" * 300], "(300 characters)"),
    ("slash in name", lambda d, data: ["name=a/b"], "name='a/b' is invalid"),
    ("empty indices", lambda d, data: ["tasks.real=[]"], "tasks.real.indices lists no indices"),
    ("overflowing range", lambda d, data: ["tasks.random=0-100000000000000000000"], "at most 2147483647"),
    ("huge range", lambda d, data: ["tasks.random=0-999999999"], "1,000,000,000 indices"),
    ("huge index", lambda d, data: ["tasks.random=100000000000000000000"], "at most 2147483647"),
    ("too many trials", lambda d, data: ["tasks.random=0-9999", "seeds=0-99"], "--max-trials 1000400"),
    ("seed range backwards", lambda d, data: ["seeds=9-3"], "seeds='9-3' is invalid"),
    ("output_dir in a file", lambda d, data: [f"output_dir={(d / 'f').write_text('x') and d / 'f' / 'runs'}"],
     "f is not a folder, so"),
    ("truncated tarball", lambda d, data: [f"dataset.root={truncated(d / 'cut.tar.gz', data)}"], "cut.tar.gz"),
    ("mixed image sizes", lambda d, data: [f"dataset.root={tarball(d / 'mixed.tar.gz', images(bad={'train/c0/big.png': png(16)}))}"],
     "images have different sizes"),
    ("not images", lambda d, data: [f"dataset.root={tarball(d / 'fake.tar.gz', images(bad={'train/c1/x.jpg': b'text'}))}"],
     "cannot decode image"),
    ("empty folder", lambda d, data: [f"dataset.root={(d / 'empty').mkdir() or d / 'empty'}"], "no dataset at"),
    ("folder of text", lambda d, data: [f"dataset.root={(d / 'txt').mkdir() or (d / 'txt' / 'a.txt').write_text('x') and d / 'txt'}"],
     "no dataset at"),
    ("labels 0..4 in a binary table", lambda d, data: [f"tasks={{t: {{kind: table, path: {table(d / 't.csv', N_TRAIN, 4)}, columns: 0-1}}}}"],
     "t.csv: column 'a' has labels outside 0..1"),
    ("table of 100 rows", lambda d, data: [f"tasks={{t: {{kind: table, path: {table(d / 't.csv', 100)}, columns: 0}}}}"],
     "t.csv has 100 rows"),
    ("malicious checkpoint", lambda d, data: [f"tasks={{d: {{kind: discovered, path: {pt(d / 'evil.pt', Evil())}, indices: 0}}}}"],
     "evil.pt is not a readable encoder checkpoint"),
    ("checkpoint without config", lambda d, data: [f"tasks={{d: {{kind: discovered, path: {pt(d / 'f.pt', {'format': 1})}, indices: 0}}}}"],
     "f.pt: encoder checkpoint with a missing or invalid entry"),
    ("checkpoint with a bad config", lambda d, data: [
        f"tasks={{d: {{kind: discovered, path: {pt(d / 'c.pt', {'format': 1, 'config': {'nope': 1}, 'image_shape': [3, 32, 32], 'encoder': {}})}, indices: 0}}}}"],
     "c.pt: encoder checkpoint with a missing or invalid entry"),
]


@pytest.mark.parametrize("make, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_nothing_written(make, message, tmp_path, tiny_dataset_tar, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = tiny_spec(tmp_path / "spec", tiny_dataset_tar, **{"tracking.uri": None, "output_dir": "runs"})
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    overrides = [a for o in make(inputs, tiny_dataset_tar) for a in ("--set", o)]
    for verb in ("validate", "sweep"):
        assert main([verb, str(spec), *overrides]) == 2, verb
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("taskdisc: error: ") and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs", "spec"]  # no runs/, mlflow.db, mlartifacts/
    assert not (tmp_path / "pwned").exists() and not (inputs / "pwned").exists()


def test_binary_spec_file(tmp_path, capsys):
    path = tmp_path / "spec.yaml"
    path.write_bytes(pickle.dumps(Evil()) + bytes(range(256)))
    assert main(["validate", str(path)]) == 2
    assert "spec.yaml: not a text file" in capsys.readouterr().err


def test_seed_ranges_and_an_explicit_trial_limit(tmp_path, tiny_dataset_tar, capsys):
    spec = tiny_spec(tmp_path, tiny_dataset_tar)
    assert main(["validate", str(spec), "--set", "seeds=0-99", "--set", "tasks.random=0-1199"]) == 2
    assert main(["validate", str(spec), "--set", "seeds=0-99", "--set", "tasks.random=0-1199",
                 "--max-trials", "200000"]) == 0
    assert "valid spec 'tiny' (kind agreement): 120,400 trials" in capsys.readouterr().out


def test_a_grid_of_a_million_trials_is_counted_not_built(tmp_path, tiny_dataset_tar):
    import tracemalloc
    from orchestrator.kinds import load_spec
    spec = load_spec(tiny_spec(tmp_path, tiny_dataset_tar), ["tasks.random=0-9999", "seeds=0-99"])
    tracemalloc.start()
    assert spec.trial_count() == 1_000_400
    trials = spec.iter_trials()
    first = [next(trials).key for _ in range(1000)]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(set(first)) == 1000 and peak < 20e6  # what 1,000 trials take, not a million


def test_tiny_dataset_is_what_the_cases_assume(tiny_dataset_tar):
    with tarfile.open(tiny_dataset_tar) as tar:
        assert sum(m.name.startswith("train/") for m in tar) == N_TRAIN


def test_a_folder_torchvision_may_fill(tmp_path):
    from trainables.data import _downloadable
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("x")
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "cifar-10-python.tar.gz").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    assert [_downloadable(tmp_path / n) for n in ("missing", "empty", "own", "full", "x.tar.gz")] == [
        True, True, True, False, False]


def test_offline_quickstart_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    """The README's main command with no data and no internet (the download made to fail fast and
    deterministically by pointing it at a closed local port)."""
    import torchvision
    from sweep_helpers import REPO
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    monkeypatch.delenv("TASKDISC_CIFAR10", raising=False)
    monkeypatch.setenv("TASKDISC_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(REPO / "specs" / "quickstart.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "download failed" in err[0], err
    assert "$TASKDISC_CIFAR10" in err[0] and "dataset.root" in err[0] and "ImageFolder" in err[0]
    assert not (tmp_path / "cache").exists()  # no folder left where the cache would be
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


# YAML that parses, but not to what its author wrote: (case, spec text after the first lines, the one line)
YAML_CASES = [
    ("a key twice", "name: a\nname: b\n", "key 'name' is given twice in one mapping (lines 1 and 2)"),
    ("two tasks blocks", "name: a\ntasks: {real: 0-1}\nseeds: [0]\ntasks: {random: 0-1}\n",
     "key 'tasks' is given twice in one mapping (lines 2 and 4)"),
    ("a nested key twice", "name: a\nprotocol:\n  epochs: 3\n  epochs: 5\n", "key 'epochs' is given twice"),
    ("a task set named on", "name: a\ntasks: {on: 0-1}\n", "key on at line 2 is not text (YAML reads it as True)"),
    ("a number as key", "name: a\ntasks: {1: 0-1}\n", "key 1 at line 2 is not text"),
    ("a list as key", "name: a\n? [x, y]\n: 1\n", "the key at line 2 is a list or mapping"),
    ("octal", "name: a\nprotocol: {epochs: 010}\n", "010 at line 2 reads as the octal number 8"),
    ("base 60", "name: a\nprotocol: {epochs: 1:30}\n", "1:30 at line 2 reads as a base-60 number in YAML (90)"),
]


@pytest.mark.parametrize("text, message", [c[1:] for c in YAML_CASES], ids=[c[0] for c in YAML_CASES])
def test_yaml_that_would_change_a_specs_meaning_is_refused(text, message, tmp_path, tiny_dataset_tar, capsys,
                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = yaml.safe_load(tiny_spec(tmp_path / "base", tiny_dataset_tar, output_dir="runs").read_text())
    given = {line.split(":")[0] for line in text.splitlines() if not line.startswith((" ", "?", ":"))}
    spec = tmp_path / "spec.yaml"  # the case's lines first (its line numbers), then the rest of a valid spec
    spec.write_text(text + yaml.safe_dump({k: v for k, v in base.items() if k not in given}))
    for verb in ("validate", "sweep"):
        assert main([verb, str(spec)]) == 2, verb
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"taskdisc: error: {spec}: ") and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "spec.yaml"]  # nothing written


def test_a_spec_and_resume_together_are_refused(tmp_path, tiny_dataset_tar, capsys):
    spec = tiny_spec(tmp_path, tiny_dataset_tar)
    assert main(["sweep", str(spec), "--resume", str(tmp_path / "runs" / "tiny")]) == 2
    assert "not both" in capsys.readouterr().err and not (tmp_path / "runs").exists()


def test_an_override_given_twice_is_refused(tmp_path, tiny_dataset_tar, capsys):
    spec = tiny_spec(tmp_path, tiny_dataset_tar)
    assert main(["validate", str(spec), "--set", "protocol.epochs=3", "--set", "protocol.epochs=5"]) == 2
    assert "--set protocol.epochs= is given twice" in capsys.readouterr().err
    assert main(["validate", str(spec), "--set", "protocol.epochs=010"]) == 2
    assert "reads as the octal number 8" in capsys.readouterr().err


def test_what_yaml_reads_as_meant(tmp_path, tiny_dataset_tar):
    """1e-3 is a number (PyYAML alone reads text), quoted text stays text, a merge key's values may be overridden."""
    from orchestrator.kinds import load_spec
    from orchestrator.specs.yaml_text import load_text
    spec = tiny_spec(tmp_path, tiny_dataset_tar)
    spec.write_text(spec.read_text().replace("protocol:\n", "protocol:\n  lr: 1e-3\n").replace("name: tiny",
                                                                                                 "name: '010'"))
    loaded = load_spec(spec)
    assert loaded.protocols[0].lr == 0.001 and loaded.name == "010"
    assert load_text("a: &a {x: 1, y: 2}\nb: {<<: *a, x: 3}\n")["b"] == {"x": 3, "y": 2}
