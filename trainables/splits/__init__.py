"""Adversarial and random train/test splits of a dataset's training images (paper, section 6).

| file | holds |
| construct.py | TrainTestSplit, adversarial and random splits, checks and summaries |
| files.py | the authors' split files, Parquet split tables, CelebA-style partition CSVs |
| training.py | training one network or a pair on a split's train part, scored on its test part |
| config.py | RandnetConfig: the random-network split's settings |
| randnet.py | the random-network split (authors' ImageNet recipe): streaming scorer and result |
"""

import importlib

# Name -> the module that defines it, imported on first use: importing a config (what a spec needs)
# does not import the training code (PyTorch, lightly).
_EXPORTS = {
    "SplitError": "construct",
    "TrainTestSplit": "construct",
    "adversarial_split": "construct",
    "check_split": "construct",
    "random_half_split": "construct",
    "random_split_like": "construct",
    "random_split_of_sizes": "construct",
    "split_summary": "construct",
    "RandnetConfig": "config",
    "RandomNetScorer": "randnet",
    "RandomNetSplit": "randnet",
    "lower_half_rule": "randnet",
    "random_class_half": "randnet",
    "random_net_split": "randnet",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
