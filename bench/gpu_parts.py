"""Parts 1, 2, 3 and 5 of the GPU check (bench/gpu_check.py): each writes its section of the
report, reusing the engine (trainables/) and the existing benchmarks' measurements
(pair_throughput.py, discovery_speed.py). Part 4 is gpu_concurrency.py. The parts that read
CIFAR-10 get its path from gpu_check.py, which refuses to start without it."""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

import discovery_speed
from forked import ChildFailed, call_forked
from gpu_goals import EngineRow, goal_lines
from gpu_peak import bf16_peak_tflops, device_name, train_flops_per_image
from pair_throughput import engine_images_per_s, matmul_gflops, reference_images_per_s
from trainables.agreement_score import agreement_score
from trainables.data import load_dataset
from trainables.protocol import Protocol
from trainables.tasks import make_task

# The engine's speed-ups, added one at a time: (precision, channels_last, compile).
LADDER = (("fp32", False, "off"), ("bf16", False, "off"), ("bf16", True, "off"), ("bf16", True, "on"))


def data(cifar10: str):
    """(CIFAR-10, its real task 0); decoded once per machine, then read from taskdisc's cache."""
    dataset = load_dataset("cifar10", cifar10, download=False)
    return dataset, make_task("real", 0, dataset)


def short(message: str, n: int = 160) -> str:
    line = message.strip().splitlines()[0] if message.strip() else "no message"
    return line if len(line) <= n else line[:n] + "..."


def nvidia_driver(device: torch.device) -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader",
                              "-i", str(device.index or 0)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown (nvidia-smi: {type(e).__name__})"
    return out.stdout.strip() or f"unknown (nvidia-smi: {short(out.stderr)})"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def env(report, device: torch.device, *, matmul_n: int, cifar10: str) -> dict:
    """Part 1: what ran the check, the bf16 matmul rate it reaches (the peak part 2 measures
    against) beside the datasheet's, and CIFAR-10 loaded once (later parts read the cache).
    Returns the device's name and the measured rate for the later parts."""
    import numpy
    import torchvision
    name = device_name(device)
    rows = [("device", name)]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        rows += [("driver", nvidia_driver(device)), ("CUDA (torch build)", torch.version.cuda),
                 ("cuDNN", torch.backends.cudnn.version()), ("compute capability", f"{props.major}.{props.minor}"),
                 ("GPU memory", f"{props.total_memory / 2 ** 30:.1f} GiB"), ("SMs", props.multi_processor_count),
                 ("TF32 (cuDNN convs / matmuls)",
                  f"{torch.backends.cudnn.allow_tf32} / {torch.backends.cuda.matmul.allow_tf32}")]
    rows += [("CPU", f"{cpu_model()}, {os.cpu_count()} cores"), ("torch", torch.__version__),
             ("torchvision", torchvision.__version__), ("numpy", numpy.__version__),
             ("Python", platform.python_version())]
    peak = bf16_peak_tflops(name)
    rows.append(("bf16 dense peak (datasheet)", f"{peak:.0f} TFLOP/s" if peak else "unknown"))
    measured = matmul_gflops(device, torch.bfloat16, matmul_n) / 1e3
    rows.append((f"bf16 matmul {matmul_n}^3, measured", f"{measured:.3g} TFLOP/s"
                 + (f" ({measured / peak:.0%} of the datasheet)" if peak else "")))
    began = time.monotonic()
    dataset = load_dataset("cifar10", cifar10, download=False)
    rows.append(("CIFAR-10", f"{cifar10}: {len(dataset.train_y)} train, {len(dataset.test_y)} test images, "
                             f"loaded in {time.monotonic() - began:.1f} s"))
    report.table("what", "value")
    for k, v in rows:
        report.row(k, v)
    return {"device": name, "bf16_tflops": measured}


def reference_rates(archs, width, batch, batches, repeats, workers, device: str, cifar10: str) -> dict:
    """{arch: {workers: images/s}} of the authors'-style loop, in a process that has not run the
    engine (its CPU allocator setting is process-wide) and loads its own data."""
    dataset, labels = data(cifar10)
    n = batches * batch
    images, y = dataset.train_x[:n], labels.train[:n]
    out = {}
    for arch in archs:
        args = argparse.Namespace(arch=arch, width=width, batch_size=batch, batches=batches, repeats=repeats)
        out[arch] = {w: reference_images_per_s(args, images, y, torch.device(device), w) for w in workers}
    return out


def throughput(report, device: torch.device, *, archs, width, batch, batches, repeats, workers, cifar10: str,
               bf16_tflops: float | None) -> None:
    """Part 2: images/s per pair of the reference loop and of the engine's speed-up ladder, the
    achieved TFLOP/s against the bf16 peak measured in this run (part 1's, else measured here) and
    the datasheet's, then the goals' verdicts."""
    try:
        ref = call_forked(reference_rates, archs, width, batch, batches, repeats, workers, str(device), cifar10)
        print("raw: reference images/s by arch and DataLoader workers:", ref)
    except ChildFailed as e:  # the engine rows still say what the engine reaches
        ref, ref_failure = {}, short(str(e))
    dataset, labels = data(cifar10)
    measured = bf16_tflops or matmul_gflops(device, torch.bfloat16) / 1e3
    datasheet = bf16_peak_tflops(device_name(device))
    flops = {a: 2 * train_flops_per_image(a, width, dataset.image_shape) for a in archs}  # a pair: two nets
    compiled = "on (skipped: dry run)" if torch._dynamo.config.disable else "on"
    report.line(f"CIFAR-10, real task 0; width {width}, batch {batch}; best of {repeats} x {batches} timed "
                f"batches; the reference loop is fp32 eager, best over DataLoader workers {list(workers)}. "
                f"TFLOP/s: the pair's convolution and matmul FLOPs "
                f"({', '.join(f'{a} {flops[a] / 1e9:.3g} GFLOP/image' for a in archs)}); bf16 peak measured "
                f"in this run: {measured:.3g} TFLOP/s (datasheet: "
                f"{f'{datasheet:.0f} TFLOP/s' if datasheet else 'unknown'}).")
    report.line()
    report.table("arch", "loop", "precision", "channels_last", "compile", "images/s per pair", "vs reference",
                 "TFLOP/s", "of measured bf16 peak", "of datasheet bf16 peak", "first-epoch overhead s")
    best = {a: max(rates.values()) for a, rates in ref.items()}
    engine: dict[str, list[EngineRow]] = {a: [] for a in archs}

    def row(arch, loop, precision, channels_last, compile_mode, ips, overhead):
        tflops = ips * flops[arch] / 1e12
        report.row(arch, loop, precision, channels_last, compile_mode, f"{ips:.0f}",
                   f"{ips / best[arch]:.2f}x" if best else "n/a", f"{tflops:.3g}", f"{tflops / measured:.1%}",
                   f"{tflops / datasheet:.1%}" if datasheet else "n/a", overhead)
        return tflops

    for arch in archs:
        if not ref:
            report.row(arch, "reference", "fp32", False, "off", f"FAILED: {ref_failure}", "", "", "", "", "")
            continue
        w = max(ref[arch], key=ref[arch].get)
        row(arch, f"reference ({w} workers)", "fp32", False, "off", best[arch], "")
    # Every eager row before any compiled one, so that a slow compile costs only the compiled rows;
    # ResNet-18's compile first: its compiled bf16 row is the likeliest to decide the peak goal.
    for precision, channels_last, compile_mode in LADDER:
        for arch in archs:
            args = argparse.Namespace(arch=arch, width=width, batch_size=batch, batches=batches, repeats=repeats,
                                      precision=precision, channels_last=channels_last)
            shown = compiled if compile_mode == "on" else compile_mode
            try:
                ips, overhead = engine_images_per_s(args, dataset, labels, device, compile_mode)
            except Exception as e:  # one configuration failing (e.g. compile) must not hide the others
                report.row(arch, "engine", precision, channels_last, shown, f"FAILED: {short(str(e))}", "", "", "",
                           "", "")
                continue
            tflops = row(arch, "engine", precision, channels_last, shown, ips, f"{overhead:.3g}")
            config = f"{precision}{', channels_last' if channels_last else ''}, compile {shown}"
            engine[arch].append(EngineRow(config, ips, overhead, tflops))
    report.line()
    report.line("Goals:")
    for arch in archs:
        for line in goal_lines(arch, best.get(arch), engine[arch], measured, len(dataset.train_y)):
            report.line(line)


def discovery_row(a: argparse.Namespace) -> dict:
    """One discovery_speed configuration; running out of memory is a result, with the peak reached."""
    try:
        return discovery_speed.one(a)
    except torch.OutOfMemoryError as e:
        peak = torch.cuda.max_memory_allocated() / 2 ** 20 if torch.cuda.is_available() else float("nan")
        return {"oom": True, "peak_gpu_mib": peak, "error": short(str(e))}


def discovery(report, device: torch.device, *, arch, width, nsteps, batch, steps, precision) -> None:
    """Part 5: seconds per meta-step and peak memory, checkpointing on and off, each in a fresh process."""
    report.line(f"{arch} width {width}, nsteps {nsteps}, inner and outer batch {batch}, {precision}; "
                f"{steps} timed meta-steps after one warm-up; random images. Memory: peak GPU memory allocated "
                f"(on the CPU: growth of the process's peak RSS).")
    report.line()
    report.table("checkpointing", "s per meta-step", "meta-steps/s", "peak memory MiB")
    for ck in ("on", "off"):  # on first: the configuration the paper's spec uses
        a = argparse.Namespace(arch=arch, width=width, nsteps=nsteps, batch=batch, checkpointing=ck,
                               device=str(device), precision=precision, steps=steps, threads=torch.get_num_threads())
        try:
            r = call_forked(discovery_row, a)
            print("raw:", r)
        except ChildFailed as e:
            report.row(ck, f"FAILED: {short(str(e))}", "", "")
            continue
        if r.get("oom"):
            report.row(ck, f"out of memory ({r['error']})", "", f"{r['peak_gpu_mib']:.0f} when it ran out")
            continue
        memory = r["peak_gpu_mib"] if "peak_gpu_mib" in r else r["rss_growth_mib"]
        report.row(ck, f"{r['s_per_meta_step']:.3g}", f"{r['meta_steps_per_s']:.3g}", f"{memory:.0f}")


def spread_summary(report, results: dict) -> None:
    """Per task: mean AS under fp32 and bf16, their difference and the seed-to-seed range."""
    for kind in ("real", "random"):
        fp32, bf16 = results.get((kind, "fp32"), []), results.get((kind, "bf16"), [])
        if not fp32 or not bf16:
            continue
        diff = sum(bf16) / len(bf16) - sum(fp32) / len(fp32)
        noise = max(max(v) - min(v) for v in (fp32, bf16))
        if min(len(fp32), len(bf16)) < 2:
            verdict = "one seed each: no noise estimate"
        else:
            verdict = "within seed noise" if abs(diff) <= noise else "outside seed noise"
        report.line(f"- {kind} task 0: AS fp32 {sum(fp32) / len(fp32):.4f}, bf16 {sum(bf16) / len(bf16):.4f}, "
                    f"bf16 - fp32 = {diff:+.4f}; seed range {noise:.4f}: {verdict}")


def agreement(report, device: torch.device, *, arch, width, epochs, batch, train_subset, holdout_subset,
              test_subset, seeds, cifar10: str) -> None:
    """Part 3: AS of real and random task 0 under fp32 and bf16, seeds interleaved so that a
    timeout still leaves comparable pairs of runs."""
    dataset = load_dataset("cifar10", cifar10, download=False)
    tasks = {kind: make_task(kind, 0, dataset) for kind in ("real", "random")}
    report.line(f"CIFAR-10; {arch} width {width}, {epochs} epochs, batch {batch}, channels_last, eager; train images: "
                f"{train_subset or 'all'}, held out: {holdout_subset or 'all'}, test: {test_subset or 'all'}.")
    report.line()
    report.table("task", "precision", "seed", "AS", "holdout acc", "test acc", "train s", "images/s")
    results: dict = {}
    for seed in seeds:
        for kind, labels in tasks.items():
            for precision in ("fp32", "bf16"):
                protocol = Protocol(arch=arch, width=width, epochs=epochs, batch_size=batch, precision=precision,
                                    channels_last=True, compile="off", train_subset=train_subset,
                                    holdout_subset=holdout_subset, test_subset=test_subset)
                r = agreement_score(dataset, labels, protocol, seed=seed, device=device)
                print("raw:", precision, r.to_dict())
                results.setdefault((kind, precision), []).append(r.agreement)
                report.row(f"{kind}-0", precision, seed, f"{r.agreement:.4f}", f"{sum(r.holdout_acc) / 2:.4f}",
                           f"{sum(r.test_acc) / 2:.4f}", f"{r.wall_s:.3g}", f"{r.images_per_s:.0f}")
    report.line()
    spread_summary(report, results)
