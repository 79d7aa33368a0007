"""Meta-steps per second and peak memory of discovery, against nsteps, with and without
per-inner-step checkpointing.

Each configuration runs in a fresh subprocess, so its peak memory is its own: on CPU the
process's peak resident set (ru_maxrss; torch allocations are invisible to tracemalloc) and
its growth over the set-up, on CUDA torch.cuda.max_memory_allocated. Images are random
uint8 CIFAR-shaped tensors: speed and memory do not depend on their content.

    PYTHONPATH=. python bench/discovery_speed.py                     # CPU sizes (width 0.125, batch 64)
    PYTHONPATH=. python bench/discovery_speed.py --device cuda --width 1 --batch 512   # the paper's config
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch


def one(a) -> dict:
    """Time `a.steps` meta-steps after one warm-up step, in this process."""
    from trainables.data import DeviceImages
    from trainables.discovery import DiscoveryConfig, DiscoveryRun
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    g = torch.Generator().manual_seed(0)
    n_train = 200 + 2 * max(a.batch, 200)  # AS holdout, outer pool, inner pool
    images = lambda n: DeviceImages(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                                    (0.5,) * 3, (0.25,) * 3, device)
    config = DiscoveryConfig(arch=a.arch, width=a.width, nsteps=a.nsteps, inner_batch_size=a.batch,
                             outer_batch_size=a.batch, checkpointing=a.checkpointing, holdout=200,
                             outer_pool=max(a.batch, 200),
                             probe_size=256, precision=a.precision, meta_steps=a.steps + 1)
    run = DiscoveryRun(images(n_train), images(16), config)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    run.step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(a.steps):
        run.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.perf_counter() - start
    row = {"arch": a.arch, "width": a.width, "nsteps": a.nsteps, "batch": a.batch, "checkpointing": a.checkpointing,
           "device": str(device), "precision": a.precision, "meta_steps_per_s": a.steps / wall,
           "s_per_meta_step": wall / a.steps}
    if device.type == "cuda":
        row["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB -> MiB
    row.update(peak_rss_mib=peak_rss, rss_growth_mib=peak_rss - base_rss)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--archs", nargs="+", default=["mlp", "resnet18"])
    p.add_argument("--nsteps", nargs="+", type=int, default=[1, 10, 50])
    p.add_argument("--width", type=float, default=None, help="default: 0.125 on CPU, 1 on CUDA")
    p.add_argument("--batch", type=int, default=None, help="inner batch; default: 64 on CPU, 512 on CUDA")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--steps", type=int, default=2, help="timed meta-steps per configuration")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--one", nargs=3, metavar=("ARCH", "NSTEPS", "CHECKPOINTING"), help=argparse.SUPPRESS)
    a = p.parse_args()
    cuda = a.device.startswith("cuda")
    a.width = a.width if a.width is not None else (1.0 if cuda else 0.125)
    a.batch = a.batch if a.batch is not None else (512 if cuda else 64)
    if a.one:
        a.arch, a.nsteps, a.checkpointing = a.one[0], int(a.one[1]), a.one[2]
        print(json.dumps(one(a)))
        return
    for arch in a.archs:
        for nsteps in a.nsteps:
            for ck in ("off", "on"):
                cmd = [sys.executable, __file__, "--one", arch, str(nsteps), ck, "--device", a.device,
                       "--width", str(a.width), "--batch", str(a.batch), "--precision", a.precision,
                       "--steps", str(a.steps), "--threads", str(a.threads)]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode:
                    print(json.dumps({"arch": arch, "nsteps": nsteps, "checkpointing": ck,
                                      "error": done.stderr.strip().splitlines()[-1]}), flush=True)
                else:
                    print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
