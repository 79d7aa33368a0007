"""Part 4 of the GPU check: how many pairs one GPU trains at once before adding one stops paying.

Processes, not CUDA streams, because that is how a sweep packs pairs on a GPU (Ray actors with
fractional `resources.gpus`). One worker process per slot is forked once, for the largest
count; at count n the first n workers train the same pair configuration side by side, started
together by a barrier after a warm-up epoch, while the rest wait. Nets run eager: compiling in
eight processes at once would cost more than the whole part's budget.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import resource
import time

import torch

from forked import die_with_parent
from pair_throughput import random_dataset
from trainables.agreement_score import AgreementRun, split_for
from trainables.data import device_images
from trainables.protocol import Protocol
from trainables.tasks import make_task

# Adding processes must raise total throughput by this much to be worth a slot: fewer pairs per
# GPU keep more memory per pair and finish each trial sooner.
WORTH = 0.05


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(rank: int, counts, archs, sizes: dict, device: torch.device, barriers: dict, results,
           parent: int) -> None:
    """Train each arch at every count that includes this rank; send (count, arch, rank, images,
    train seconds, window start, window end, peak MiB) per measurement."""
    try:
        die_with_parent(parent)  # a part killed with SIGKILL cannot terminate its workers itself
        threads = torch.get_num_threads()
        n_train = sizes["batches"] * sizes["batch"]
        dataset = random_dataset(n_train)
        labels = make_task("random", 0, dataset)
        train, test = device_images(dataset, device, channels_last=True)
        for n in counts:
            if rank >= n:
                continue
            torch.set_num_threads(max(1, threads // n))  # the check's CPU threads, shared fairly
            for arch in archs:
                barriers[n].wait()  # every peer is done with the previous measurement
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                protocol = Protocol(arch=arch, width=sizes["width"], batch_size=sizes["batch"],
                                    epochs=1 + sizes["repeats"], precision=sizes["precision"], channels_last=True,
                                    compile="off", train_subset=n_train, holdout_subset=2, test_subset=2)
                run = AgreementRun(train, test, labels, split_for(dataset, protocol), protocol)
                run.train_epoch()  # warm-up: allocator, cuDNN algorithm choice
                seen, wall = run.images_seen, run.wall_s
                barriers[n].wait()
                start = time.monotonic()
                while not run.done:
                    run.train_epoch()
                results.put(("ok", n, arch, rank, run.images_seen - seen, run.wall_s - wall, start,
                             time.monotonic(), peak_mib(device)))
                del run
        results.put(("done", rank))
    except BaseException as e:  # tell the collector, and release peers stuck at a barrier
        for b in barriers.values():
            b.abort()
        results.put(("error", rank, f"{type(e).__name__}: {e}"))


def collect(procs, results, on_measurement) -> None:
    """Feed each measurement to `on_measurement` until every worker is done; raise on a worker's
    error or death (a dead worker would leave its peers waiting at a barrier)."""
    done = 0
    while done < len(procs):
        try:
            msg = results.get(timeout=1.0)
        except queue.Empty:
            dead = [(i, p.exitcode) for i, p in enumerate(procs) if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"worker {dead[0][0]} died (exit code {dead[0][1]})") from None
            continue
        if msg[0] == "error":
            raise RuntimeError(f"worker {msg[1]}: {msg[2]}")
        if msg[0] == "done":
            done += 1
        else:
            on_measurement(*msg[1:])


def suggestion(arch: str, totals: dict[int, float]) -> str:
    """The fewest processes within WORTH of the best total throughput, as a `resources.gpus` fraction."""
    best = max(totals, key=totals.get)
    n = min(k for k, v in totals.items() if v >= (1 - WORTH) * totals[best])
    return (f"- {arch}: `resources.gpus: {1 / n:.3g}` ({n} per GPU: {totals[n]:.0f} images/s in all, "
            f"{totals[n] / totals[min(totals)]:.2f}x one process; the most measured: {totals[best]:.0f} at {best})")


def concurrency(report, device: torch.device, *, archs, processes, width, batch, batches, repeats,
                precision) -> None:
    """Part 4: per-pair and total images/s at each process count, and a `resources.gpus` per arch."""
    counts = sorted(processes)
    sizes = dict(width=width, batch=batch, batches=batches, repeats=repeats, precision=precision)
    report.line(f"Random images; width {width}, batch {batch}, {precision}, channels_last, eager; per process "
                f"{repeats} timed epochs of {batches} batches after a warm-up epoch. Per pair: images over the "
                f"pair's own training time; total: all images over the shared window. Memory per process: peak "
                f"GPU memory allocated (on the CPU: peak RSS).")
    report.line()
    report.table("arch", "processes", "images/s per pair", "total images/s", "per pair vs 1", "total vs 1",
                 "peak MiB per process")
    ctx = multiprocessing.get_context("fork")  # this process has not touched CUDA: see forked.py
    results = ctx.Queue()
    barriers = {n: ctx.Barrier(n) for n in counts}
    procs = [ctx.Process(target=worker, args=(rank, counts, archs, sizes, device, barriers, results, os.getpid()),
                         daemon=True) for rank in range(counts[-1])]
    got: dict = {}
    totals: dict = {arch: {} for arch in archs}

    def on_measurement(n, arch, rank, images, train_s, start, end, mib):
        print(f"raw: {n} processes, {arch}, rank {rank}: {images} images, {train_s:.4f} s training, window "
              f"{start:.4f}-{end:.4f}, {mib:.0f} MiB")
        rows = got.setdefault((arch, n), [])
        rows.append((images, train_s, start, end, mib))
        if len(rows) < n:
            return
        per_pair = sum(i / t for i, t, *_ in rows) / n
        total = sum(r[0] for r in rows) / (max(r[3] for r in rows) - min(r[2] for r in rows))
        totals[arch][n] = total
        base_pair, base_total = got[(arch, counts[0])], totals[arch][counts[0]]
        base_per_pair = sum(i / t for i, t, *_ in base_pair) / len(base_pair)
        report.row(arch, n, f"{per_pair:.0f}", f"{total:.0f}", f"{per_pair / base_per_pair:.2f}",
                   f"{total / base_total:.2f}", f"{max(r[4] for r in rows):.0f}")

    for p in procs:
        p.start()
    try:
        collect(procs, results, on_measurement)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    report.line()
    for arch in archs:
        report.line(suggestion(arch, totals[arch]))
