"""Split construction, split files and training on a split (trainables.splits), on hand-made labels."""
from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from trainables.data import CIFAR10_MEAN, CIFAR10_STD, ImageDataset
from trainables.protocol import Protocol
from trainables.splits import (SplitError, TrainTestSplit, adversarial_split, check_split, random_half_split,
                               random_split_like, split_summary)
from trainables.splits.files import NO_TARGET, read_splits, write_partition_csv, write_single_split, write_splits
from trainables.splits.training import split_parts, train_on_split, training_labels
from trainables.tasks import make_task


def test_adversarial_split_puts_agreeing_images_in_train():
    target = torch.tensor([0, 1, 0, 1, 1, 0, 1, 0])
    rule = torch.tensor([0, 0, 1, 1, 1, 1, 0, 0])
    split = adversarial_split(target, rule)
    assert split.train.tolist() == [0, 3, 4, 7] and split.test.tolist() == [1, 2, 5, 6]
    summary = split_summary(split, target, 2)
    assert summary["split/train_size"] == 4 and summary["split/test_size"] == 4
    assert summary["split/train_class1_frac"] == 0.5 and summary["split/test_class0_frac"] == 0.5
    # On the test part the rule is the target flipped: a network that learnt the rule scores 0 there.
    assert torch.equal(rule[split.test], 1 - target[split.test])
    with pytest.raises(SplitError, match="binary"):
        adversarial_split(torch.tensor([0, 2, 1]), torch.tensor([0, 1, 1]))


def test_random_baselines_are_seeded_and_sized():
    half = random_half_split(11, seed=3)
    assert half.sizes == (6, 5) and torch.equal(half.train, random_half_split(11, seed=3).train)
    assert not torch.equal(half.train, random_half_split(11, seed=4).train)
    assert sorted(half.train.tolist() + half.test.tolist()) == list(range(11))
    adv = TrainTestSplit(torch.arange(7), torch.arange(7, 10))
    like = random_split_like(adv, 10, seed=0)
    assert like.sizes == (7, 3) and not torch.isin(like.train, like.test).any()


@pytest.mark.parametrize("train, test, message", [
    ([0, 1, 10], [2], "index 10, outside"),
    ([0, -1], [2], "index -1, outside"),
    ([0, 1, 1], [2], "lists an image twice"),
    ([0, 1, 2], [2, 3], "in both train and test"),
    ([0, 1], [], "needs images in both parts"),
])
def test_bad_splits_are_named(train, test, message):
    with pytest.raises(SplitError, match=message) as e:
        check_split(TrainTestSplit(torch.tensor(train, dtype=torch.int64), torch.tensor(test, dtype=torch.int64)),
                    10, "splits.torch [0][1]")
    assert str(e.value).startswith("splits.torch [0][1]:") and "\n" not in str(e.value)


def test_split_files_round_trip(tmp_path):
    splits = {27: [TrainTestSplit(torch.tensor([0, 2, 4]), torch.tensor([1, 3])),
                   TrainTestSplit(torch.tensor([1, 2]), torch.tensor([0, 4]))],
              3: [TrainTestSplit(torch.tensor([5]), torch.tensor([6, 7]))]}
    for name in ("cifar_splits.torch", "splits.parquet"):
        back = read_splits(write_splits(tmp_path / name, splits), n_images=8)
        assert sorted(back) == [3, 27]
        for k in splits:
            assert [(s.train.tolist(), s.test.tolist()) for s in back[k]] == \
                   [(s.train.tolist(), s.test.tolist()) for s in splits[k]]
    # The authors' layout exactly: a dict of lists of (train, test) tensor tuples.
    raw = torch.load(tmp_path / "cifar_splits.torch", weights_only=True)
    assert isinstance(raw[27][0], tuple) and raw[27][0][0].dtype == torch.int64
    single = read_splits(write_single_split(tmp_path / "adv-split.torch", splits[3][0]))
    assert list(single) == [NO_TARGET] and single[NO_TARGET][0].test.tolist() == [6, 7]
    torch.save([[0, 1, 2], [3, 4]], tmp_path / "lists.pt")  # plain lists are a split too
    assert read_splits(tmp_path / "lists.pt")[NO_TARGET][0].train.tolist() == [0, 1, 2]
    csv = write_partition_csv(tmp_path / "partition.csv", splits[27][0], [f"img{i}.jpg" for i in range(6)])
    assert csv.read_text().splitlines() == ["image_id,partition", "img0.jpg,0", "img1.jpg,2", "img2.jpg,0",
                                            "img3.jpg,2", "img4.jpg,0"]
    assert pq.read_table(tmp_path / "splits.parquet").column_names == ["target", "split", "train", "test"]


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_bad_split_files_are_refused_in_one_line(tmp_path):
    cases = {"evil.torch": Evil(), "dict.pt": {"a": 1}, "nested.pt": {0: [(torch.tensor([0]),)]},
             "str.pt": "hello", "three.pt": [[0], [1], [2]]}
    for name, obj in cases.items():
        torch.save(obj, tmp_path / name)
    (tmp_path / "junk.torch").write_bytes(b"not a torch file")
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 nope")
    (tmp_path / "splits.txt").write_text("0 1\n")
    for path in sorted(tmp_path.iterdir()):
        with pytest.raises(SplitError) as e:
            read_splits(path, n_images=10)
        assert str(path) in str(e.value) and "\n" not in str(e.value), path
    assert not (tmp_path / "pwned").exists() and not os.path.exists("pwned")
    torch.save({0: [(torch.tensor([0, 1]), torch.tensor([1, 2]))]}, tmp_path / "overlap.torch")
    with pytest.raises(SplitError, match=r"overlap.torch \[0\]\[0\]: 1 images are in both"):
        read_splits(tmp_path / "overlap.torch", n_images=10)


@pytest.fixture
def separable() -> ImageDataset:
    """10 classes whose images differ in brightness only, so an MLP learns them in a few epochs."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(400) % 10
    x = (y.view(-1, 1, 1, 1) * 25 + torch.randint(0, 10, (400, 3, 4, 4), generator=g)).to(torch.uint8)
    return ImageDataset("bright10", x, y, x[:50], y[:50], tuple(map(str, range(10))), CIFAR10_MEAN, CIFAR10_STD)


def test_a_network_trained_on_an_adversarial_split_learns_the_rule(separable, one_thread):
    """Target: class in {0..4}; rule: class is even. Where they agree both are learnable; the
    rule is not easier here, so only the mechanics are checked: sizes, parts and one vs two networks."""
    target = make_task("real", 0, separable)
    rule = (separable.train_y % 2 == 0).long()
    split = adversarial_split(target.train, rule)
    protocol = Protocol(arch="mlp", width=0.25, epochs=3, batch_size=64, compile="off", holdout_subset=100)
    parts = split_parts(split, protocol, len(separable.test_y))
    assert len(parts.holdout) == 100 and torch.isin(parts.holdout, split.test).all()
    assert torch.equal(parts.train, split.train)
    one = train_on_split(separable, split, target, protocol, seed=0, networks=1)
    pair = train_on_split(separable, split, training_labels(separable, target, "classes"), protocol, networks=2)
    assert len(one.holdout_acc) == 1 and np.isnan(one.agreement)
    assert len(pair.holdout_acc) == 2 and 0 <= pair.agreement <= 1 and pair.task == "real10-0"
