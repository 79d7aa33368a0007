"""How close each task of task tables sits to a human concept: its best label agreement (a task and its
negation count as one) over the 126 real 5-vs-5 class tasks of CIFAR-10, per table and on average.

    python bench/closest_real.py runs/x/discovered/<key>/tasks.parquet [more tables] [--columns 0-7]

Reads CIFAR-10 from $TASKDISC_CIFAR10 (or the cache), as the sweeps do. Random labels are the floor
(about 0.51 at 50,000 images); a real task scores 1.
"""
from __future__ import annotations

import argparse

import torch

from orchestrator.specs.indices import parse_indices
from trainables.data import load_dataset
from trainables.discovery.stats import closest_real_tasks
from trainables.task_table import read_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tables", nargs="+", help="task tables (.parquet/.csv) with one row per training image")
    ap.add_argument("--columns", default=None, help="which task columns, e.g. 0-7 (default: all)")
    args = ap.parse_args()
    data = load_dataset("cifar10")
    random = torch.randint(2, (len(data.train_y), 8), generator=torch.Generator().manual_seed(0))
    rows = [("random labels (8 tasks)", random)]
    for path in args.tables:
        names, values = read_table(path)
        cols = list(parse_indices(args.columns, "--columns", "closest_real")) if args.columns else range(len(names))
        rows.append((path, torch.from_numpy(values[:, cols])))
    for name, labels in rows:
        index, agreement = closest_real_tasks(labels, data.train_y)
        per_task = " ".join(f"{a:.3f}(real-{i})" for i, a in zip(index.tolist(), agreement.tolist()))
        print(f"{name}\n  mean {agreement.mean():.4f}  max {agreement.max():.4f}  per task: {per_task}")


if __name__ == "__main__":
    main()
