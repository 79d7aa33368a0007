"""Data sources, the decode cache, the agreement split and on-device normalisation."""
from __future__ import annotations

import io
import pickle
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

import trainables.data as data
from trainables.data import (CIFAR10_MEAN, CIFAR10_STD, DatasetError, DeviceImages, load_dataset, make_split)

CLASSES = ("cat", "ant", "bee")  # deliberately unsorted: the index must sort them
FILES = ("b.png", "a.png", "c.png")


def _image(cls: int, k: int, part: str) -> np.ndarray:
    """A 4x6 RGB image whose pixels encode (part, class, file), so any reordering shows."""
    value = 100 * (part == "test") + 10 * cls + k
    return np.full((4, 6, 3), value, np.uint8)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")  # lossless, so pixel values survive exactly
    return buf.getvalue()


def _members():
    for part in ("train", "test"):
        for c, cls in enumerate(sorted(CLASSES)):
            for f in FILES:
                yield f"{part}/{cls}/{f}", _png(_image(c, int(f[0] == "b") + 2 * int(f[0] == "c"), part))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKDISC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def tarball(tmp_path):
    path = tmp_path / "tiny.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in _members():
            info = tarfile.TarInfo("./" + name)  # a leading ./ is how `tar czf x.tgz .` packs
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "tree"
    for name, blob in _members():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(blob)
    (root / "train" / "ant" / "notes.txt").write_text("not an image")
    return root


@pytest.mark.parametrize("source", ["tarball", "folder"])
def test_image_folder_sources_index_by_class_then_file_name(source, request, cache):
    ds = load_dataset("imagefolder", str(request.getfixturevalue(source)))
    assert ds.classes == ("ant", "bee", "cat")
    assert ds.train_x.dtype == torch.uint8 and ds.train_x.shape == (9, 3, 4, 6)
    assert ds.train_y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # file order a, b, c encodes k = 0, 1, 2 within each class
    assert ds.train_x[:, 0, 0, 0].tolist() == [0, 1, 2, 10, 11, 12, 20, 21, 22]
    assert ds.test_x[:, 0, 0, 0].tolist() == [100, 101, 102, 110, 111, 112, 120, 121, 122]
    mean = ds.train_x.float().div(255).mean((0, 2, 3))
    assert torch.allclose(torch.tensor(ds.mean), mean, atol=1e-6)  # measured, no published stats


def test_second_load_reads_the_cache(tarball, cache, monkeypatch):
    first = load_dataset("imagefolder", str(tarball))
    assert any(cache.iterdir())

    def no_decoding(path):
        raise AssertionError("decoded again although the cache holds this tarball")
    monkeypatch.setattr(data, "read_tarball", no_decoding)
    second = load_dataset("imagefolder", str(tarball))
    assert torch.equal(first.train_x, second.train_x) and torch.equal(first.test_y, second.test_y)
    assert second.classes == first.classes


def test_cache_is_keyed_by_content(tmp_path, cache):
    a, b = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    for path, shift in ((a, 0), (b, 1)):
        with tarfile.open(path, "w:gz") as tar:
            for name, blob in _members():
                arr = np.asarray(Image.open(io.BytesIO(blob))) + shift
                blob = _png(arr.astype(np.uint8))
                info = tarfile.TarInfo(name)
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    ds_a, ds_b = (load_dataset("imagefolder", str(p)) for p in (a, b))
    assert torch.equal(ds_b.train_x, ds_a.train_x + 1)


def test_missing_dataset_names_the_path(tmp_path, cache):
    missing = tmp_path / "nowhere"
    assert set(data.DATASET_IDENTITIES) == set(data.DATASETS)
    for name in data.DATASETS:  # every registered dataset, each a cheap identity check and a load
        with pytest.raises(DatasetError, match=str(missing)):
            data.dataset_identity(name, str(missing), download=False)
        with pytest.raises(DatasetError, match=str(missing)):
            load_dataset(name, str(missing), download=False)


def test_malformed_tarball_names_the_path(tmp_path, cache):
    bad = tmp_path / "broken.tar.gz"
    bad.write_bytes(b"this is not gzip" * 10)
    with pytest.raises(DatasetError, match=str(bad)):
        load_dataset("imagefolder", str(bad))


def test_undecodable_image_names_the_file(folder, cache):
    (folder / "test" / "bee" / "a.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="bee/a.png"):
        load_dataset("imagefolder", str(folder))


def test_cifar10_rejects_a_tree_that_is_not_cifar10(tarball, cache):
    with pytest.raises(DatasetError, match="3 classes"):
        load_dataset("cifar10", str(tarball))


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="cifar10, imagefolder"):
        load_dataset("mnist")


def _fake_torchvision_cifar10(root, rng) -> tuple[np.ndarray, list[int]]:
    """torchvision's cifar-10-batches-py layout: pickled dicts of flat uint8 rows (N, 3072)."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rows, labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, 2).tolist()
        (base / name).write_bytes(pickle.dumps({"data": x, "labels": y}))
        if name != "test_batch":
            rows.append(x)
            labels += y
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    return np.concatenate(rows), labels


def test_torchvision_cifar10_layout(tmp_path, cache, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar
    # torchvision checks each file's md5 against the official release; our fakes cannot match
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    rows, labels = _fake_torchvision_cifar10(tmp_path, np.random.default_rng(0))
    for root in (tmp_path, tmp_path / "cifar-10-batches-py"):
        ds = load_dataset("cifar10", str(root), download=False)
        assert ds.train_x.shape == (10, 3, 32, 32) and ds.test_x.shape == (2, 3, 32, 32)
        assert torch.equal(ds.train_x.flatten(1), torch.from_numpy(rows))  # CHW rows, unchanged
        assert ds.train_y.tolist() == labels and ds.classes[0] == "airplane"
        assert ds.mean == CIFAR10_MEAN  # the paper's statistics, not measured ones


def test_torchvision_cifar10_corrupt_files_give_dataset_error(tmp_path, cache):
    _fake_torchvision_cifar10(tmp_path, np.random.default_rng(0))  # md5s do not match
    with pytest.raises(DatasetError, match=str(tmp_path)):
        load_dataset("cifar10", str(tmp_path), download=False)


def test_split_sizes_disjoint_and_seeded():
    s = make_split(50000, 10000)
    assert (len(s.train), len(s.holdout), len(s.test)) == (45000, 5000, 10000)
    both = torch.cat([s.train, s.holdout])
    assert len(both.unique()) == 50000 and both.min() == 0 and both.max() == 49999
    again, other = make_split(50000, 10000), make_split(50000, 10000, seed=1)
    assert torch.equal(s.holdout, again.holdout) and torch.equal(s.train, again.train)
    assert not torch.equal(s.holdout, other.holdout)


def test_holdout_is_the_authors_random_split():
    """check_as.py: random_split(train, [45000, 5000], generator=Generator().manual_seed(0)); the
    second part is held out."""
    fit, held = torch.utils.data.random_split(range(50000), [45000, 5000],
                                              generator=torch.Generator().manual_seed(0))
    s = make_split(50000, 10000)
    assert s.holdout.tolist() == sorted(held.indices) and s.train.tolist() == sorted(fit.indices)


def test_split_subsets_are_seeded_subsets():
    full = make_split(50000, 10000)
    s = make_split(50000, 10000, train_subset=1000, holdout_subset=200, test_subset=300)
    assert (len(s.train), len(s.holdout), len(s.test)) == (1000, 200, 300)
    assert torch.isin(s.train, full.train).all() and torch.isin(s.holdout, full.holdout).all()
    assert torch.equal(s.train, make_split(50000, 10000, train_subset=1000, holdout_subset=200,
                                           test_subset=300).train)
    assert not torch.equal(s.train, make_split(50000, 10000, train_subset=1000, subset_seed=1).train)
    with pytest.raises(ValueError, match="train_subset"):
        make_split(100, 10, holdout=50, train_subset=51)
    with pytest.raises(ValueError, match="holdout"):
        make_split(100, 10, holdout=100)


@pytest.mark.parametrize("channels_last", [False, True])
def test_device_images_normalise_like_the_reference(channels_last):
    images = torch.randint(0, 256, (7, 3, 5, 5), dtype=torch.uint8)
    di = DeviceImages(images, CIFAR10_MEAN, CIFAR10_STD, "cpu", channels_last)
    idx = torch.tensor([4, 0, 6])
    mean, std = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    expected = (images[idx].float() / 255 - mean) / std
    got = di.batch(idx)
    assert got.dtype == torch.float32 and got.shape == (3, 3, 5, 5)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_real_cifar10(cifar10):
    assert cifar10.train_x.shape == (50000, 3, 32, 32) and cifar10.test_x.shape == (10000, 3, 32, 32)
    assert cifar10.train_x.dtype == torch.uint8
    assert torch.bincount(cifar10.train_y).tolist() == [5000] * 10
    assert torch.bincount(cifar10.test_y).tolist() == [1000] * 10
    assert cifar10.classes[:3] == ("airplane", "automobile", "bird")
    means = cifar10.train_x.float().mean((0, 2, 3))
    torch.testing.assert_close(means, torch.tensor([125.3, 122.9, 113.9]), atol=0.15, rtol=0)
