"""The random-network split (trainables/splits/randnet.py) and the image stream it reads
(trainables/image_stream.py): dataset order, folder = tarball, resizing, the split's halves,
exact resume, and scoring in memory that does not grow with the dataset."""
import io
import random
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainables.data import load_image_folder
from trainables.image_stream import list_images, stream_images
from trainables.sources import DatasetError
from trainables.splits import (RandnetConfig, RandomNetScorer, adversarial_split, lower_half_rule,
                               random_class_half, random_net_split)

COUNTS = (7, 8, 9, 10, 11)  # uneven and odd class sizes
SMALL = dict(arch="mlp", width=0.125, image_size=None, batch_size=16, batches_per_step=2, decode_threads=1)


def write_folder(root: Path, counts=COUNTS, size=(20, 20), seed=0) -> Path:
    """train/class<k>/<i>.png noise images, `counts[k]` per class."""
    rng = np.random.default_rng(seed)
    for c, n in enumerate(counts):
        (root / "train" / f"class{c}").mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "train" / f"class{c}" / f"{i:04d}.png")
    return root


def pack(folder: Path, path: Path, shuffle_seed: int | None = None, prefix: str = "") -> Path:
    """`folder`'s files as a tarball, in sorted or (given a seed) shuffled member order."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(files)
    kw = {"compresslevel": 1} if path.name.endswith(".gz") else {}
    with tarfile.open(path, "w:gz" if kw else "w", **kw) as tar:
        for f in files:
            tar.add(f, arcname=prefix + str(f.relative_to(folder)))
    return path


def gather(images, **kw) -> torch.Tensor:
    """All images of a stream, placed by dataset index."""
    batches = list(stream_images(images, 5, **kw))
    out = torch.empty((len(images), *batches[0][1].shape[1:]), dtype=torch.uint8)
    for idx, x in batches:
        out[idx] = x
    return out


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """One small dataset as a folder, as an in-order .tar.gz and as a shuffled .tar with a prefix."""
    tmp = tmp_path_factory.mktemp("randnet")
    folder = write_folder(tmp / "folder")
    return folder, pack(folder, tmp / "sorted.tar.gz"), pack(folder, tmp / "shuffled.tar", 1, "data/")


def test_listing_and_pixels_follow_the_datasets_order(tiny_dataset_tar, tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("TASKDISC_CACHE", str(tmp_path / "cache"))
    data = load_image_folder(str(tiny_dataset_tar))
    with tarfile.open(tiny_dataset_tar) as tar:
        tar.extractall(tmp_path / "folder", filter="data")
    for source in (tiny_dataset_tar, tmp_path / "folder"):
        train, test = list_images(source), list_images(source, "test")
        assert train.classes == data.classes and train.files[0] == "train/class0/0000.png"
        assert torch.equal(train.class_ids, data.train_y) and torch.equal(test.class_ids, data.test_y)
        assert torch.equal(gather(train), data.train_x) and torch.equal(gather(test), data.test_x)


def test_a_shuffled_tarball_streams_by_name_into_dataset_order(sources):
    folder, in_order, shuffled = sources
    lists = [list_images(s) for s in sources]
    assert lists[0].files == lists[1].files == lists[2].files and len(lists[0]) == sum(COUNTS)
    assert lists[0].stream_key == lists[1].stream_key != lists[2].stream_key
    assert lists[2].index("train/class3/0004.png") == 7 + 8 + 9 + 4 and lists[2].index("train/class3/x.png") is None
    first = next(stream_images(lists[2], 5))[0]
    assert not torch.equal(first, torch.arange(5))  # members really are out of order
    pixels = gather(lists[0])
    assert torch.equal(gather(lists[1]), pixels) and torch.equal(gather(lists[2]), pixels)


def test_folder_and_tarball_give_the_same_scores(sources, one_thread):
    folder, in_order, shuffled = sources
    config = RandnetConfig(**SMALL)
    a, b, c = (random_net_split(s, config) for s in sources)
    assert torch.equal(a.scores, b.scores) and torch.isfinite(a.scores).all()
    # other batches hold other images: equal up to float rounding of the batched matmul
    torch.testing.assert_close(c.scores, a.scores)


def test_mixed_sizes_are_resized_and_cropped_or_refused(tmp_path):
    root = tmp_path / "mixed"
    (root / "train" / "a").mkdir(parents=True)
    for i, (w, h) in enumerate([(40, 30), (30, 50), (64, 64), (24, 24)]):
        Image.new("RGB", (w, h), (10 * i, 100, 200)).save(root / "train" / "a" / f"{i}.png")
    bands = np.concatenate([np.full((16, 16, 3), v, np.uint8) for v in (0, 128, 255)], axis=1)
    Image.fromarray(bands).save(root / "train" / "a" / "9.png")  # 48 wide, 16 high
    images = list_images(root)
    x = gather(images, image_size=16, crop_fraction=1.0)
    assert x.shape == (5, 3, 16, 16)
    for i in range(4):  # a uniform image stays uniform
        assert (x[i].flatten(1) - torch.tensor([10 * i, 100, 200])[:, None]).abs().max() <= 1
    assert (x[4] == 128).all()  # the centre square of the three bands
    assert gather(images, image_size=24).shape == (5, 3, 24, 24)
    with pytest.raises(DatasetError, match="set image_size"):
        gather(images)


def test_unreadable_images_and_missing_trees_are_named(tmp_path):
    root = write_folder(tmp_path / "bad", counts=(3,))
    (root / "train" / "class0" / "0001.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"0001\.png.*replace or remove"):
        gather(list_images(root))
    with pytest.raises(DatasetError, match="ImageFolder"):
        list_images(tmp_path / "nowhere")


def test_lower_half_rule_breaks_ties_by_index():
    scores = torch.tensor([3.0, 1.0, 1.0, 2.0, 5.0, 5.0, 5.0])
    class_ids = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    assert lower_half_rule(scores, class_ids).tolist() == [0, 1, 0, 1, 1, 0, 0]


def test_rule_halves_each_class_and_target_halves_the_classes(sources, one_thread):
    folder = sources[0]
    s = random_net_split(folder, RandnetConfig(**SMALL, target_seed=3))
    for c, n in enumerate(COUNTS):
        mine = s.class_ids == c
        assert int(s.rule[mine].sum()) == n // 2
        assert s.scores[mine & (s.rule == 1)].max() <= s.scores[mine & (s.rule == 0)].min()
    assert s.target_classes == random_class_half(5, 3) and len(s.target_classes) == 2
    assert torch.equal(s.target, torch.isin(s.class_ids, torch.tensor(s.target_classes)).long())
    again = random_net_split(folder, RandnetConfig(**SMALL, target_seed=3))
    assert torch.equal(again.scores, s.scores) and torch.equal(again.target, s.target)
    other = random_net_split(folder, RandnetConfig(**SMALL, target_seed=1, net_seed=1))
    assert other.target_classes != s.target_classes and not torch.equal(other.scores, s.scores)
    expected = adversarial_split(s.target, s.rule)
    assert torch.equal(s.split.train, expected.train) and torch.equal(s.split.test, expected.test)
    assert torch.equal(torch.cat([s.split.train, s.split.test]).sort().values, torch.arange(sum(COUNTS)))


@pytest.mark.parametrize("which", [0, 2], ids=["folder", "shuffled-tar"])
def test_resume_equals_an_uninterrupted_run(sources, which, one_thread):
    config = RandnetConfig(**SMALL)
    full = random_net_split(sources[which], config)
    first = RandomNetScorer(sources[which], config)
    metrics = first.step()
    assert metrics["randnet/images"] == 32 and not first.done
    with pytest.raises(RuntimeError, match="until done"):
        first.result()
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    state = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    with pytest.raises(ValueError, match="net_seed"):
        RandomNetScorer(sources[which], RandnetConfig(**SMALL, net_seed=5)).load_state_dict(state)
    with pytest.raises(ValueError, match="repacked"):  # the other order: the position means other images
        RandomNetScorer(sources[2 - which], config).load_state_dict(state)
    second = RandomNetScorer(sources[which], RandnetConfig(**{**SMALL, "batches_per_step": 1}))
    second.load_state_dict(state)
    while not second.done:
        second.step()
    assert torch.equal(second.result().scores, full.scores)


def test_the_default_network_scores_resized_images(sources, one_thread):
    s = random_net_split(sources[0], RandnetConfig(width=0.125, image_size=32, batch_size=64, decode_threads=2))
    assert torch.isfinite(s.scores).all() and s.scores.unique().numel() > len(s.scores) // 2


PEAK = """
import resource, sys, torch
torch.set_num_threads(1)
from trainables.splits.randnet import RandnetConfig, random_net_split
config = RandnetConfig(arch="mlp", width=0.125, image_size=None, batch_size=50, decode_threads=1)
for source in sys.argv[1:]:
    random_net_split(source, config)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # peak so far, KiB on Linux
"""


def write_copies(root: Path, n: int, size: int = 64) -> Path:
    """n noise images (a few distinct PNGs written over and over: the test is about memory)."""
    rng = np.random.default_rng(0)
    encoded = []
    for _ in range(7):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
        encoded.append(buf.getvalue())
    for c in range(3):
        (root / "train" / f"class{c}").mkdir(parents=True)
        for i in range(n // 3):
            (root / "train" / f"class{c}" / f"{i:04d}.png").write_bytes(encoded[i % 7])
    return root


def test_scoring_memory_does_not_grow_with_the_dataset(tmp_path):
    # 3000 64x64 images are 37 MB decoded, and as much as PNG noise; a scorer holding them would show.
    # One process (imports cost most of this test) scores 300 images, then 3000, from a folder, then
    # from a tarball: a larger run reuses what the one before allocated (the CPU allocator keeps freed
    # memory), so only what grows with the dataset raises the peak (measured: ~5 MB; holding: ~35 MB).
    small, large = write_copies(tmp_path / "small", 300), write_copies(tmp_path / "large", 3000)
    sources = [small, large, pack(small, tmp_path / "small.tar"), pack(large, tmp_path / "large.tar")]
    out = subprocess.run([sys.executable, "-c", PEAK, *map(str, sources)], capture_output=True, text=True,
                         cwd=Path(__file__).parent.parent, check=True)
    peaks = [int(line) for line in out.stdout.split()]
    for kind, before, after in (("folder", peaks[0], peaks[1]), ("tarball", peaks[2], peaks[3])):
        growth_mb = (after - before) / 1024
        assert growth_mb < 15, f"{kind}: scoring 3000 images peaked {growth_mb:.1f} MB above scoring 300"
