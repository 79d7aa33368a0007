"""Adversarial and random train/test splits of a dataset's training images (paper, section 6).

| file | holds |
| construct.py | TrainTestSplit, adversarial and random splits, checks and summaries |
| files.py | the authors' split files, Parquet split tables, CelebA-style partition CSVs |
| training.py | training one network or a pair on a split's train part, scored on its test part |
| randnet.py | the random-network split (authors' ImageNet recipe): streaming scorer, config, result |
"""
from .construct import (SplitError, TrainTestSplit, adversarial_split, check_split, random_half_split,
                        random_split_like, random_split_of_sizes, split_summary)
from .randnet import (RandnetConfig, RandomNetScorer, RandomNetSplit, lower_half_rule, random_class_half,
                      random_net_split)

__all__ = ["SplitError", "TrainTestSplit", "adversarial_split", "check_split", "random_half_split",
           "random_split_like", "random_split_of_sizes", "split_summary", "RandnetConfig", "RandomNetScorer",
           "RandomNetSplit", "lower_half_rule", "random_class_half", "random_net_split"]
