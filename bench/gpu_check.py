"""The GPU check: five measurements of taskdisc's GPU design, each under its own time limit,
into one Markdown report that survives a part's failure or timeout.

Run it through bench/gpu_check.sh (which sets the data path and OUT). Each part runs in a forked
child that leads its own process group, with its stdout and stderr in $OUT/partN-NAME.log;
a part that raises, dies or runs past its limit is recorded as FAILED or TIMEOUT and the next
part runs. `--dry-run`: the CPU at toy sizes, every code path in under a minute.
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # trainables/, with no install step

import torch  # noqa: E402

from forked import ChildFailed, ChildTimeout, call_forked  # noqa: E402

PARTS = ("env", "throughput", "concurrency", "discovery", "as")
TITLES = {
    "env": "GPU, driver and versions",
    "throughput": "Pair throughput: reference loop against the engine",
    "concurrency": "Pairs per GPU: processes sharing one device",
    "discovery": "Discovery meta-step, with and without checkpointing",
    "as": "Agreement score under fp32 and bf16",
}

# The GPU run's sizes (the settings). The limits sum to under 10 minutes; they come from
# estimates for an H100, not yet from a run: each part's time in the report says how close it came.
FULL = {
    "env": dict(matmul_n=8192),
    "throughput": dict(archs=("resnet18", "mlp"), width=1.0, batch=512, batches=20, repeats=2, workers=(0, 4)),
    "concurrency": dict(archs=("resnet18", "mlp"), processes=(1, 2, 4, 8), width=1.0, batch=512, batches=10,
                        repeats=2, precision="bf16"),
    # one timed meta-step after a warm-up one: estimated seconds each, steady after the first
    "discovery": dict(arch="resnet18", width=1.0, nsteps=50, batch=512, steps=1, precision="bf16"),
    # 10 epochs on 10k training images (not 45k): the fp32-bf16 comparison in an estimated 2 minutes
    "as": dict(arch="resnet18", width=1.0, epochs=10, batch=512, train_subset=10000, holdout_subset=None,
               test_subset=None, seeds=(0, 1), random_fallback=False),
}
LIMITS_S = {"env": 25, "throughput": 180, "concurrency": 110, "discovery": 100, "as": 165}

# Toy sizes: every code path, seconds each on a 2-core CPU. Width 0.125, not narrower: at width
# 0.0625 (4-channel convs) oneDNN's channels-last fp32 1x1-convolution backward segfaults on the CPU.
# bf16 is emulated on most CPUs (a toy ResNet-18 pair: ~8x slower than fp32), so only the parts
# that compare precisions use it, and part 5 runs the MLP.
DRY_WIDTH = 0.125
DRY = {
    "env": dict(matmul_n=256),
    "throughput": dict(archs=("resnet18", "mlp"), width=DRY_WIDTH, batch=8, batches=1, repeats=1, workers=(0,)),
    "concurrency": dict(archs=("resnet18", "mlp"), processes=(1, 2), width=DRY_WIDTH, batch=16, batches=1,
                        repeats=1, precision="fp32"),
    "discovery": dict(arch="resnet18", width=DRY_WIDTH, nsteps=2, batch=8, steps=1, precision="fp32"),
    "as": dict(arch="mlp", width=DRY_WIDTH, epochs=1, batch=32, train_subset=64, holdout_subset=64,
               test_subset=64, seeds=(0, 1), random_fallback=True),
}
DRY_LIMIT_S = 60


class Report:
    """Markdown appended line by line, each line flushed to disk: a killed part leaves what it wrote.
    Each line is echoed to stdout too, so a part's log shows it among warnings and tracebacks."""

    def __init__(self, path: Path):
        self.path = path

    def line(self, text: str = "") -> None:
        with open(self.path, "a") as f:
            f.write(text + "\n")
        print(text, flush=True)

    def table(self, *columns: str) -> None:
        self.line("| " + " | ".join(columns) + " |")
        self.line("|" + "---|" * len(columns))

    def row(self, *cells) -> None:
        self.line("| " + " | ".join(str(c) for c in cells) + " |")


def run_part(part: str, report: Report, device: str, sizes: dict, inject: str | None) -> None:
    """One part, in its forked child. `inject` (tests): "error" raises, "hang" sleeps past the limit."""
    if inject == "error":
        raise RuntimeError("injected failure (--inject)")
    if inject == "hang":
        time.sleep(10 ** 6)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("no CUDA device: torch.cuda.is_available() is False")
    if part == "concurrency":
        from gpu_concurrency import concurrency as fn
    else:
        import gpu_parts
        fn = {"env": gpu_parts.env, "throughput": gpu_parts.throughput, "discovery": gpu_parts.discovery,
              "as": gpu_parts.agreement}[part]
    fn(report, dev, **sizes)


def key_values(items: list[str], what: str, cast) -> dict:
    out = {}
    for item in items:
        part, sep, value = item.partition("=")
        if not sep or part not in PARTS:
            raise SystemExit(f"{what} {item!r}: expected PART=VALUE with PART one of {', '.join(PARTS)}")
        out[part] = cast(value)
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="CPU, toy sizes: checks every code path in < 1 min")
    p.add_argument("--device", help="torch device (default: cuda; cpu with --dry-run)")
    p.add_argument("--out", default=os.environ.get("OUT"), help="report folder (default: $OUT, else a temp folder)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--limit", action="append", default=[], metavar="PART=S", help="override a part's time limit")
    p.add_argument("--inject", action="append", default=[], metavar="PART=error|hang",
                   help="make a part fail or hang (tests the failure path)")
    a = p.parse_args(argv)
    a.parts = [s for s in a.parts.split(",") if s]
    unknown = set(a.parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"--parts: unknown {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    a.limit = key_values(a.limit, "--limit", float)
    a.inject = key_values(a.inject, "--inject", str)
    a.device = a.device or ("cpu" if a.dry_run else "cuda")
    a.out = Path(a.out or tempfile.mkdtemp(prefix="gpu_check."))
    return a


def main(argv=None) -> None:
    a = parse_args(argv)
    # A SIGTERM (e.g. from the shell's timeout) becomes an exception, so the running part's
    # process group is killed too instead of running on, holding the GPU.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    a.out.mkdir(parents=True, exist_ok=True)
    report = Report(a.out / "gpu_report.md")
    report.path.write_text("")
    if a.dry_run:
        # Inductor's C++ build takes minutes on a small CPU; the dry run keeps the compiled code path
        # (the torch.compile wrapper) and skips compilation itself.
        torch._dynamo.config.disable = True
        # Toy tensors on a shared small CPU: a contended thread pool costs 10-100x (tests/conftest.py).
        torch.set_num_threads(1)
    sizes = DRY if a.dry_run else FULL
    cifar = os.environ.get("TASKDISC_CIFAR10")
    report.line(f"# taskdisc GPU check{' (dry run: CPU, toy sizes)' if a.dry_run else ''}")
    report.line()
    report.line(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')} on {platform.node()}; device `{a.device}`; "
                f"CIFAR-10: {cifar if cifar and Path(cifar).exists() else 'not found (random images)'}")
    start = time.monotonic()
    for i, part in enumerate(PARTS, 1):
        if part not in a.parts:
            continue
        limit = a.limit.get(part, DRY_LIMIT_S if a.dry_run else LIMITS_S[part])
        report.line()
        report.line(f"## {i}. {TITLES[part]}")
        report.line()
        began = time.monotonic()
        try:
            call_forked(run_part, part, report, a.device, sizes[part], a.inject.get(part), timeout=limit,
                        log=str(a.out / f"part{i}-{part}.log"), new_group=True)
        except ChildTimeout:
            report.line(f"\n**TIMEOUT**: part {i} ran past its limit of {limit:.0f} s and was killed; "
                        f"see part{i}-{part}.log")
        except ChildFailed as e:
            report.line(f"\n**FAILED**: {e}")
        report.line(f"\n_part {i}: {time.monotonic() - began:.1f} s (limit {limit:.0f} s)_")
    report.line(f"\nTotal: {time.monotonic() - start:.1f} s")
    print(f"report and logs in {a.out}")


if __name__ == "__main__":
    main()
