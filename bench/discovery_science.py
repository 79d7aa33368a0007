"""Does discovery find tasks with a high agreement score? A CPU-sized check, by hand.

Phase `discover`: a discovery run on CIFAR-10 (MLP encoder and pair, a train subset), saving
the encoder before training (step 0) and after, and their task tables. Phase `score`: the
agreement score, under one short protocol, of (a) the discovered tasks, (b) random-label
tasks, (c) the untrained encoder's tasks, (d) real tasks; one JSON line per task. Phase
`summary`: mean, std, min and max per group. Phases can run in parallel processes
(e.g. `score --groups random real` while `discover` runs).

    PYTHONPATH=. python bench/discovery_science.py discover --out /tmp/science
    PYTHONPATH=. python bench/discovery_science.py score --out /tmp/science
    PYTHONPATH=. python bench/discovery_science.py summary --out /tmp/science
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from trainables.agreement_score import agreement_score
from trainables.data import device_images
from trainables.data import load_dataset
from trainables.discovery import DiscoveryConfig, DiscoveryRun, save_encoder
from trainables.discovery.export import write_table
from trainables.protocol import Protocol
from trainables.labels import TaskLabels
from trainables.tasks import make_task

GROUPS = ("discovered", "random", "untrained", "real")
REAL_TASKS = (0, 11, 18, 27, 31, 38, 40, 100)  # the paper's adversarial-split targets, and one more


def discovery_config(a) -> DiscoveryConfig:
    return DiscoveryConfig(arch="mlp", width=a.width, h_dim=a.h_dim, n_linear_tasks=a.h_dim, nsteps=a.nsteps,
                           inner_lr=a.inner_lr, inner_batch_size=a.batch, outer_batch_size=a.batch,
                           uniformity_coef=a.uniformity_coef, outer_lr=a.outer_lr, meta_steps=a.steps,
                           train_subset=a.train_subset, probe_size=2048, calibration_size=a.train_subset)


def protocol(a) -> Protocol:
    return Protocol(arch="mlp", width=a.width, epochs=a.epochs, train_subset=a.train_subset,
                    holdout_subset=a.holdout_subset, compile="off")


def discover_phase(a, dataset, out: Path) -> None:
    config = discovery_config(a)
    train, test = device_images(dataset, "cpu")
    run = DiscoveryRun(train, test, config)
    for name in ("untrained", "discovered"):
        if name == "discovered":
            start = time.perf_counter()
            with open(out / "discovery_log.jsonl", "w") as log:
                while not run.done:
                    m = run.step()
                    log.write(json.dumps(m) + "\n")
                    if run.steps % 20 == 0 or run.done:
                        log.flush()
                        print(f"step {run.steps}: agreement {m['discovery/agreement_loss']:.4f} uniformity "
                              f"{m['discovery/uniformity_loss']:.3f} balance {m['discovery/balance']:.3f} "
                              f"similarity {m['discovery/similarity']:.3f} ({time.perf_counter() - start:.0f} s)",
                              flush=True)
        train_labels, _ = run.labels()  # calibrates the encoder's BatchNorm first
        save_encoder(run.encoder, config, out / f"{name}.pt")
        write_table(train_labels, out / f"{name}.csv")


def score_phase(a, dataset, out: Path) -> None:
    prot = protocol(a)
    with open(out / "scores.jsonl", "a") as f:
        for group in a.groups:
            for i in range(a.n_tasks):
                if group in ("discovered", "untrained"):
                    task = make_task("table", i, dataset, source=str(out / f"{group}.csv"))
                    labels = TaskLabels(f"{group}-{i}", task.train, None, 2)
                elif group == "random":
                    labels = make_task("random", i, dataset)
                else:
                    labels = make_task("real", REAL_TASKS[i % len(REAL_TASKS)], dataset)
                r = agreement_score(dataset, labels, prot, seed=0)
                row = {"group": group, "task": labels.name, "agreement": r.agreement, "balance": r.balance,
                       "train_acc": r.train_acc, "holdout_acc": r.holdout_acc, "wall_s": r.wall_s}
                f.write(json.dumps(row) + "\n")
                f.flush()
                print(row, flush=True)


def summary_phase(out: Path) -> None:
    rows = [json.loads(line) for line in open(out / "scores.jsonl")]
    for group in GROUPS:
        s = [r["agreement"] for r in rows if r["group"] == group]
        b = [r["balance"] for r in rows if r["group"] == group]
        if s:
            print(f"{group:11s} n={len(s)} AS mean {statistics.mean(s):.4f} std {statistics.pstdev(s):.4f} "
                  f"min {min(s):.4f} max {max(s):.4f} | balance mean {statistics.mean(b):.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("phase", choices=("discover", "score", "summary"))
    p.add_argument("--out", type=Path, default=Path("/tmp/discovery_science"))
    p.add_argument("--data", default=None, help="CIFAR-10 root or tarball (default: $TASKDISC_CIFAR10)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these sizes)")
    p.add_argument("--width", type=float, default=0.25, help="MLP width of encoder, pair and scorer")
    p.add_argument("--h-dim", type=int, default=16, help="embedding dimension = number of tasks")
    p.add_argument("--nsteps", type=int, default=10, help="unrolled inner steps")
    p.add_argument("--inner-lr", type=float, default=0.1)
    p.add_argument("--outer-lr", type=float, default=1e-3)
    p.add_argument("--uniformity-coef", type=float, default=5.0)
    p.add_argument("--batch", type=int, default=512, help="inner and agreement batch size")
    p.add_argument("--steps", type=int, default=400, help="meta-steps")
    p.add_argument("--train-subset", type=int, default=10000)
    p.add_argument("--holdout-subset", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=12, help="epochs of the scoring protocol")
    p.add_argument("--n-tasks", type=int, default=8, help="tasks scored per group")
    p.add_argument("--groups", nargs="+", choices=GROUPS, default=list(GROUPS))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    with open(a.out / f"args-{a.phase}.json", "w") as f:
        json.dump({k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}, f)
    if a.phase == "summary":
        return summary_phase(a.out)
    dataset = load_dataset("cifar10", a.data, download=False)
    (discover_phase if a.phase == "discover" else score_phase)(a, dataset, a.out)


if __name__ == "__main__":
    main()
