"""Images/s of one agreement pair: a reference-style loop against the engine's fast path.

(a) reference: the authors' check_as.py style - a Dataset that turns each PIL image into a
    tensor and normalises it (ToTensor + Normalize), a torch DataLoader, two nn.Modules, one
    Adam over both, fp32. Tried with several DataLoader worker counts; the fastest counts.
    It runs in a fresh process, so it sees the C library's default allocator as the authors'
    script would, not the one the engine configures (trainables/cpu_memory.py).
(b) engine: `AgreementRun` with Protocol defaults except arch / width / batch / subsets.

Both train the same architecture on the same images and labels (real task 0 of CIFAR-10 when
$TASKDISC_CIFAR10 points at it, else random images). For the MLP the achieved GFLOP/s of the
pair is compared with a large matmul measured in the same run.

    python bench/pair_throughput.py                      # mlp (width 1) and resnet18 (width 0.25), CPU
    python bench/pair_throughput.py --device cuda --precision bf16 --channels-last --arch resnet18 --width 1
"""
from __future__ import annotations

import argparse
import concurrent.futures
import math
import multiprocessing
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from trainables.agreement_score import AgreementRun, split_for  # noqa: E402
from trainables.data import device_images
from trainables.data import CIFAR10_ENV, CIFAR10_MEAN, CIFAR10_STD, ImageDataset, load_dataset  # noqa: E402
from trainables.models import build_model  # noqa: E402
from trainables.protocol import Protocol  # noqa: E402
from trainables.tasks import make_task  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_dataset(n: int, n_test: int = 1000) -> ImageDataset:
    """Random CIFAR-shaped images in 10 classes: `n` to train on beside the protocol's default
    holdout, and `n_test` test images. Speed does not depend on image content."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n + Protocol().holdout + n_test, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(len(x)) % 10
    train, test = slice(0, len(x) - n_test), slice(len(x) - n_test, len(x))
    return ImageDataset("random", x[train], y[train], x[test], y[test], tuple(map(str, range(10))),
                        CIFAR10_MEAN, CIFAR10_STD)


def load_data(n: int) -> ImageDataset:
    if os.environ.get(CIFAR10_ENV):
        return load_dataset("cifar10", os.environ[CIFAR10_ENV], download=False)
    return random_dataset(n)


class ReferenceDataset(torch.utils.data.Dataset):
    """PIL images, converted and normalised one by one as torchvision's CIFAR10 + transforms do."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        from torchvision import transforms
        self.images = images.permute(0, 2, 3, 1).numpy()  # HWC, like CIFAR10.data
        self.labels = labels.tolist()
        self.transform = transforms.Compose([transforms.ToTensor(),
                                             transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def reference_images_per_s(args, images, labels, device, workers: int) -> float:
    """Best of `repeats` timings of `batches` steps of the reference loop (images/s); the first two
    batches (worker start-up, first-touch allocation) are not timed."""
    torch.manual_seed(0)
    nets = [build_model(args.arch, 2, args.width, tuple(images.shape[1:])).to(device) for _ in range(2)]
    opt = torch.optim.Adam([p for n in nets for p in n.parameters()], lr=1e-3)
    loader = torch.utils.data.DataLoader(ReferenceDataset(images, labels), batch_size=args.batch_size,
                                         shuffle=True, num_workers=workers, drop_last=True,
                                         persistent_workers=workers > 0)
    steps, total = 0, 2 + args.batches * args.repeats
    marks = []
    while steps < total:
        for x, y in loader:
            if steps >= 2 and (steps - 2) % args.batches == 0:
                sync(device)
                marks.append(time.perf_counter())
            x, y = x.to(device), y.to(device)
            for n in nets:
                n.train()
            loss = F.cross_entropy(nets[0](x), y) + F.cross_entropy(nets[1](x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if steps == total:
                break
    sync(device)
    marks.append(time.perf_counter())
    return args.batches * args.batch_size / min(b - a for a, b in zip(marks, marks[1:]))


def engine_images_per_s(args, dataset, labels, device, compile_mode: str) -> tuple[float, float]:
    """(best images/s over `repeats` epochs of `batches` steps, first-epoch overhead in s: compile
    warm-up and first-touch costs). Epoch time is the run's own clock: training steps, no evaluation."""
    n = args.batches * args.batch_size
    protocol = Protocol(arch=args.arch, width=args.width, batch_size=args.batch_size, epochs=1 + args.repeats,
                        precision=args.precision, channels_last=args.channels_last, compile=compile_mode,
                        train_subset=n, holdout_subset=args.batch_size, test_subset=args.batch_size)
    train, test = device_images(dataset, device, protocol.channels_last)
    run = AgreementRun(train, test, labels, split_for(dataset, protocol), protocol)
    times = []
    for _ in range(protocol.epochs):
        before = run.wall_s
        run.train_epoch()
        times.append(run.wall_s - before)
    steady = min(times[1:])
    return n / steady, times[0] - steady


def mlp_linear_flops(width: float, batch: int, image_shape) -> int:
    """Exact FLOPs of one training step of one MLP's Linear layers: forward, weight gradient and
    input gradient (2*B*in*out each; no input gradient for the first layer)."""
    model = build_model("mlp", 2, width, image_shape)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return sum(2 * batch * m.in_features * m.out_features * (2 if i == 0 else 3)
               for i, m in enumerate(linears))


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int = 4096, reps: int = 5) -> float:
    """Best of `reps` timings of one n x n @ n x n matmul."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = math.inf
    for _ in range(reps + 1):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def bench(args, dataset, device) -> None:
    shape = tuple(dataset.train_x.shape[1:])
    labels = make_task("real", 0, dataset) if len(dataset.classes) == 10 else make_task("random", 0, dataset)
    n = args.batches * args.batch_size
    idx = torch.arange(n)  # the reference sees the first n images; the engine a seeded n-subset
    images, y = dataset.train_x[idx], labels.train[idx]
    print(f"\n== {args.arch} width {args.width} batch {args.batch_size}, best of {args.repeats} x "
          f"{args.batches} timed batches, "
          f"{device} {args.precision}{' channels_last' if args.channels_last else ''}, "
          f"{torch.get_num_threads()} threads")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        ref = {w: pool.submit(reference_images_per_s, args, images, y, device, w).result() for w in args.workers}
    for w, r in ref.items():
        print(f"(a) reference loop, num_workers={w}: {r:9.1f} images/s per pair")
    a = max(ref.values())
    modes = args.compile or (["auto", "on", "off"] if args.arch == "mlp" else ["auto", "off"])
    results = {}
    for mode in modes:
        ips, warm = engine_images_per_s(args, dataset, labels, device, mode)
        results[mode] = ips
        print(f"(b) engine, compile={mode:4s}: {ips:9.1f} images/s per pair, first-epoch overhead {warm:6.1f} s"
              f"  -> b/a = {ips / a:.2f}")
    if args.arch == "mlp":
        flops = 2 * mlp_linear_flops(args.width, args.batch_size, shape)  # two networks
        dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
        peak = matmul_gflops(device, dtype)
        mode = "auto" if "auto" in results else max(results, key=results.get)  # the engine default if timed
        achieved = results[mode] / args.batch_size * flops / 1e9
        print(f"matmul 4096^3 {dtype}: {peak:.1f} GFLOP/s; MLP pair (engine, compile={mode}, Linear layers): "
              f"{achieved:.1f} GFLOP/s = {achieved / peak:.0%} of matmul")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", choices=["mlp", "resnet18", "both"], default="both")
    p.add_argument("--width", type=float, help="width factor (default: mlp 1; resnet18 0.25 on CPU, 1 on CUDA)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="engine precision (the reference loop is always fp32)")
    p.add_argument("--channels-last", action="store_true", help="engine: channels-last activations")
    p.add_argument("--batches", type=int, default=10, help="timed training batches per measurement")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed repetitions; the best counts (robust to other load on the machine)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="reference DataLoader workers to try")
    p.add_argument("--compile", nargs="+", choices=["auto", "on", "off"],
                   help="engine compile modes to time (default: auto and the alternatives)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    dataset = load_data(args.batches * args.batch_size)
    for arch in (["mlp", "resnet18"] if args.arch == "both" else [args.arch]):
        width = args.width or (1.0 if arch == "mlp" or device.type == "cuda" else 0.25)
        bench(argparse.Namespace(**{**vars(args), "arch": arch, "width": width}), dataset, device)


if __name__ == "__main__":
    main()
