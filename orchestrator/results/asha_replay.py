"""What a top-k search would have spent and found, replayed offline on a full sweep's per-epoch curves.

A top-k search (`search.top_k`) runs Tune's ASHA on each trial's held-out agreement after every
epoch. Given a sweep run to the end (every trial's `agreement_by_epoch`), `replay` runs the same rule
on those curves for any grace period and reduction factor: trials start in the sweep's order,
`concurrency` at a time, every epoch taking the same time; at a rung (grace x factor^n epochs) a
trial goes on only if its agreement is not below the (1 - 1/factor) quantile of those that reached
the rung before it, as Tune's `_Bracket.on_result` decides. A decision at the last epoch stops
nothing: the trial has finished.

    python -m orchestrator.results.asha_replay runs/top-k-real-full --top-k 5 --grace 1,2,3 --reduction 2,3,4
"""
from __future__ import annotations

import argparse
import heapq
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def rungs(grace: int, factor: int, max_t: int) -> list[int]:
    """Tune's ASHA milestones for one bracket: grace x factor^k up to max_t."""
    count = int(np.log(max_t / grace) / np.log(factor) + 1)
    return [grace * factor ** k for k in range(count)]


@dataclass(frozen=True)
class Replay:
    grace: int
    factor: int
    epochs: int  # spent over all trials
    full: int  # every trial to the end
    finished: tuple[int, ...]  # trials (positions in `curves`) that ran to the end

    @property
    def saving(self) -> float:
        return self.full / self.epochs


def replay(curves: list[list[float]], grace: int, factor: int, concurrency: int = 2,
           order: list[int] | None = None) -> Replay:
    """ASHA over `curves` (one per trial, its metric after each epoch), trials started in `order`."""
    max_t = max(len(c) for c in curves)
    milestones = sorted(rungs(grace, factor, max_t), reverse=True)
    recorded: dict[int, list[float]] = {m: [] for m in milestones}
    queue = list(order if order is not None else range(len(curves)))[::-1]
    events: list[tuple[int, int, int, int]] = []  # (time, start sequence, trial, epoch)
    seq = 0
    for _ in range(min(concurrency, len(queue))):
        trial = queue.pop()
        heapq.heappush(events, (1, seq, trial, 1))
        seq += 1
    spent, finished = 0, []
    while events:
        time, _, trial, epoch = heapq.heappop(events)
        spent += 1
        value = curves[trial][epoch - 1]
        stop = False
        for m in milestones:
            if epoch == m:
                values = [v for v in recorded[m] if not math.isnan(v)]
                stop = bool(values) and value < np.percentile(values, (1 - 1 / factor) * 100)
                recorded[m].append(value)
                break
        if epoch == len(curves[trial]) or stop:
            if epoch == len(curves[trial]):
                finished.append(trial)
            if queue:
                heapq.heappush(events, (time + 1, seq, queue.pop(), 1))
                seq += 1
        else:
            heapq.heappush(events, (time + 1, seq, trial, epoch + 1))
            seq += 1
    return Replay(grace, factor, spent, sum(len(c) for c in curves), tuple(sorted(finished)))


def found(r: Replay, finals: list[float], true_top: set[int], k: int) -> int:
    """How many of `true_top` are among the k best (by final AS) of the trials the search finished."""
    best = sorted(r.finished, key=lambda i: -finals[i])[:k]
    return len(true_top & set(best))


def grid(curves: list[list[float]], k: int, graces, factors, concurrency: int = 2, true_top: set[int] | None = None,
         shuffles: int = 0, seed: int = 0) -> list[dict]:
    """One row per (grace, factor): epochs saved and how many of the true top k were found, in the sweep's
    order and (`shuffles`) the share of random start orders that found them all."""
    finals = [c[-1] for c in curves]
    true_top = true_top if true_top is not None else set(sorted(range(len(curves)), key=lambda i: -finals[i])[:k])
    rng = random.Random(seed)
    orders = [rng.sample(range(len(curves)), len(curves)) for _ in range(shuffles)]
    out = []
    for g in graces:
        for f in factors:
            if g >= max(len(c) for c in curves):
                continue
            r = replay(curves, g, f, concurrency)
            shuffled = [replay(curves, g, f, concurrency, o) for o in orders]
            out.append({"grace": g, "factor": f, "epochs": r.epochs, "saving": r.saving,
                        "finished": len(r.finished), "found": found(r, finals, true_top, k),
                        "all_found_share": (sum(found(s, finals, true_top, k) == len(true_top) for s in shuffled)
                                            / shuffles) if shuffles else math.nan,
                        "saving_shuffled": (sum(s.saving for s in shuffled) / shuffles) if shuffles else math.nan})
    return out


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    from orchestrator.tracking.record import Record
    p = argparse.ArgumentParser(prog="python -m orchestrator.results.asha_replay", description=__doc__.split("\n")[0])
    p.add_argument("sweep_dir", type=Path, help="a sweep run to the end (no top_k), e.g. runs/top-k-real-full")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--grace", type=_ints, default=[1, 2, 3, 4])
    p.add_argument("--reduction", type=_ints, default=[2, 3, 4, 5])
    p.add_argument("--seed", type=int, default=0, help="the pair seed whose curves are replayed")
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--shuffles", type=int, default=20, help="random start orders tried besides the sweep's")
    args = p.parse_args(argv)
    # every recorded trial of the seed, in a one-seed sweep's order (task sets, then indices); the record,
    # not the saved spec, which may name fewer tasks if the folder was swept again for more seeds
    rows = sorted((r for r in Record(args.sweep_dir).rows() if r["seed"] == args.seed and not r.get("stopped")),
                  key=lambda r: (r["group"], r["index"]))
    curves = [r["agreement_by_epoch"] for r in rows]
    print(f"{len(curves)} trials of seed {args.seed}; true top {args.top_k}: "
          + ", ".join(f"{r['group']}-{r['index']}" for r in sorted(rows, key=lambda r: -r["agreement"])[:args.top_k]))
    print(f"{'grace':>5}{'factor':>7}{'epochs':>8}{'saving':>8}{'finished':>9}{'found':>6}"
          f"{'all found (shuffled)':>22}{'saving (shuffled)':>19}")
    for r in grid(curves, args.top_k, args.grace, args.reduction, args.concurrency, shuffles=args.shuffles):
        print(f"{r['grace']:>5}{r['factor']:>7}{r['epochs']:>8}{r['saving']:>7.2f}x{r['finished']:>9}{r['found']:>6}"
              f"{r['all_found_share']:>22.2f}{r['saving_shuffled']:>18.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
