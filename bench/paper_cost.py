"""Time and cost of specs/paper-as.yaml on cluster.yaml's workers, from a measurement on this machine.

Per architecture of the spec: the training FLOPs of one pair per image (counted by PyTorch's
FlopCounterMode over a forward and backward of both networks), this machine's measured pair
throughput (the engine, `bench/pair_throughput.py`'s timing), hence the CPU time of one trial; then
the GPU time at an assumed sustained rate, which a GPU run of `bench/gpu_check.sh` replaces.
Training only: evaluation passes (forward only, over holdout and test) add roughly a tenth.

    python bench/paper_cost.py                       # measure at batch 64 on the CPU, 2 batches
    python bench/paper_cost.py --gpu-tflops 10 --price 1.212 --head-price 0.192 --workers 8
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pair_throughput import engine_images_per_s, load_data  # noqa: E402
from trainables.models import build_model  # noqa: E402
from trainables.tasks import make_task  # noqa: E402

SPEC = Path(__file__).resolve().parents[1] / "specs" / "paper-as.yaml"
CIFAR_TRAIN = 50_000


def pair_train_flops(arch: str, width: float, batch: int = 8) -> float:
    """FLOPs of one training step of the pair, per image (forward and backward of both nets)."""
    nets = [build_model(arch, 2, width) for _ in range(2)]
    x = torch.randn(batch, 3, 32, 32)
    with FlopCounterMode(display=False) as counter:
        for net in nets:
            net(x).sum().backward()
    return counter.get_total_flops() / batch


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=64, help="measured batch (the spec's is larger; CPU time)")
    p.add_argument("--batches", type=int, default=2)
    p.add_argument("--gpu-tflops", type=float, default=10.0,
                   help="assumed sustained training TFLOP/s of one worker's GPU (A10G: 31 fp32 peak)")
    p.add_argument("--price", type=float, default=1.212, help="$/h of one worker (g5.2xlarge on demand)")
    p.add_argument("--head-price", type=float, default=0.192, help="$/h of the head (m5.xlarge on demand)")
    p.add_argument("--workers", type=int, default=8, help="worker nodes (cluster.yaml max_workers)")
    args = p.parse_args(argv)
    spec = yaml.safe_load(SPEC.read_text())
    proto, tasks = spec["protocol"], spec["tasks"]
    trials_per_arch = sum(len(range(int(a), int(b) + 1)) for a, b in (str(v).split("-") for v in tasks.values()))
    images = proto["epochs"] * (CIFAR_TRAIN - proto["holdout"])
    dataset = load_data(args.batch_size * args.batches)
    labels = make_task("real", 0, dataset)
    print(f"{SPEC.name}: {trials_per_arch} trials per architecture, {images:,} training images per trial; "
          f"measured at batch {args.batch_size} on {torch.get_num_threads()} CPU threads")
    gpu_hours = 0.0
    for arch in proto["arch"]:
        flops = pair_train_flops(arch, proto["width"])
        run = argparse.Namespace(arch=arch, width=proto["width"], batch_size=args.batch_size, batches=args.batches,
                                 repeats=1, precision="fp32", channels_last=False)
        ips, _ = engine_images_per_s(run, dataset, labels, torch.device("cpu"), "off")
        cpu_h = images / ips / 3600
        gpu_h = images * flops / (args.gpu_tflops * 1e12) / 3600
        gpu_hours += gpu_h * trials_per_arch
        print(f"{arch:9s} {flops / 1e9:7.2f} GFLOP/image/pair  CPU {ips:7.1f} images/s "
              f"({ips * flops / 1e9:5.1f} GFLOP/s): {cpu_h:7.1f} CPU-h/trial  GPU at {args.gpu_tflops:g} TFLOP/s: "
              f"{gpu_h * 60:6.1f} min/trial")
    wall = gpu_hours / args.workers
    cost = wall * (args.workers * args.price + args.head_price)
    print(f"paper sweep: {gpu_hours:.0f} GPU-hours; on {args.workers} workers {wall:.1f} h, "
          f"${cost:,.0f} (${args.price}/h per worker, ${args.head_price}/h head)")


if __name__ == "__main__":
    main()
