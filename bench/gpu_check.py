"""The GPU check: five measurements of taskdisc's GPU design inside one time budget, into one
Markdown report that survives a part's failure or timeout and a kill of the whole run.

Run it through bench/gpu_check.sh (docs/gpu.md: the device call, how to read the report).
Each part runs in a forked child that leads its own process group, with its stdout and stderr in
OUT/partN-NAME.log; a part that raises, dies or runs past its limit is recorded as FAILED or
TIMEOUT and the next part runs. The report is appended line by line, so whatever finished is on
disk when the run is cut. `--dry-run`: the CPU at toy sizes, every code path in seconds.
"""
from __future__ import annotations

import time

START = time.monotonic()  # the budget counts from here: torch's import is part of the run

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # trainables/, with no install step

import torch  # noqa: E402

from forked import ChildFailed, ChildTimeout, call_forked  # noqa: E402
from trainables.data import CIFAR10_ENV  # noqa: E402

# Ordered by value: part 2's numbers are the goals; part 3 says whether the bf16 ones can be
# used (the GPU specs score in bf16); part 4 sets `resources.gpus`; part 5 is discovery's cost.
# Part 1 is seconds and measures the peak part 2 is held against.
PARTS = ("env", "throughput", "as", "concurrency", "discovery")
TITLES = {
    "env": "GPU, driver, versions and data",
    "throughput": "Pair throughput: reference loop against the engine",
    "as": "Agreement score under fp32 and bf16",
    "concurrency": "Pairs per GPU: processes sharing one device",
    "discovery": "Discovery meta-step, with and without checkpointing",
}
NEEDS_CIFAR10 = {"env", "throughput", "as"}

# Each part's share of the budget (seconds at the default 480 s; scaled to any other). A part may
# also use what the parts before it left unused, never what the parts after it are due. The
# shares come from estimates for an H200, not yet from a run: each part's footer says how close it came.
DEFAULT_BUDGET_S = 480
SHARES = {"env": 40, "throughput": 150, "as": 130, "concurrency": 80, "discovery": 70}
MARGIN_S = 5  # kept back at the end: a killed part's grace (forked.py: 3 s) and the last lines
MIN_PART_S = 1.0  # a part with less left than this is not started

# The GPU run's sizes (the settings).
FULL = {
    "env": dict(matmul_n=8192),
    "throughput": dict(archs=("resnet18", "mlp"), width=1.0, batch=512, batches=20, repeats=2, workers=(0, 4, 8)),
    # 10 epochs on 10k training images (not 45k): the fp32-bf16 comparison in about 2 minutes
    "as": dict(arch="resnet18", width=1.0, epochs=10, batch=512, train_subset=10000, holdout_subset=None,
               test_subset=None, seeds=(0, 1)),
    "concurrency": dict(archs=("resnet18", "mlp"), processes=(1, 2, 4, 8), width=1.0, batch=512, batches=10,
                        repeats=2, precision="bf16"),
    # one timed meta-step after a warm-up one: estimated seconds each, steady after the first
    "discovery": dict(arch="resnet18", width=1.0, nsteps=50, batch=512, steps=1, precision="bf16"),
}

# Toy sizes: every code path, seconds each on a 2-core CPU. Width 0.125, not narrower: at width
# 0.0625 (4-channel convs) oneDNN's channels-last fp32 1x1-convolution backward segfaults on the CPU.
# bf16 is emulated on most CPUs (a toy ResNet-18 pair: ~8x slower than fp32), so only the parts
# that compare precisions use it, and part 3 runs the MLP.
DRY_WIDTH = 0.125
DRY = {
    "env": dict(matmul_n=256),
    "throughput": dict(archs=("resnet18", "mlp"), width=DRY_WIDTH, batch=8, batches=1, repeats=1, workers=(0,)),
    "as": dict(arch="mlp", width=DRY_WIDTH, epochs=1, batch=32, train_subset=64, holdout_subset=64,
               test_subset=64, seeds=(0, 1)),
    "concurrency": dict(archs=("resnet18", "mlp"), processes=(1, 2), width=DRY_WIDTH, batch=16, batches=1,
                        repeats=1, precision="fp32"),
    "discovery": dict(arch="resnet18", width=DRY_WIDTH, nsteps=2, batch=8, steps=1, precision="fp32"),
}

CIFAR10_COPY = ".data/cifar10-jpeg.tar.gz"  # in the checkout, ignored by git, carried to the device
COPY_STEP = "mkdir -p .data && cp ../shared/data/cifar10-jpeg.tar.gz .data/"


class BadInput(Exception):
    """A flag or the data is wrong: one line naming it and the fix, exit code 2, nothing written."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's usage block would make it several lines
        raise BadInput(f"{message} (see --help)")


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


def find_cifar10(root: Path, environ) -> Path:
    """$TASKDISC_CIFAR10 where it is set, else the checkout's copy: the device gets only the checkout."""
    given = environ.get(CIFAR10_ENV)
    path = Path(given).expanduser() if given else root / CIFAR10_COPY
    if not path.is_file():
        where = f"${CIFAR10_ENV}={given}" if given else str(path)
        raise BadInput(f"no CIFAR-10 at {where}; copy it once, from the repository root: {COPY_STEP} "
                       f"(and name .data in the device call's carry)")
    return path.resolve()


def part_limit(remaining: float, later_shares: float, override: float | None) -> float:
    """Seconds part may run: its share plus what earlier parts left, keeping the later parts'
    shares; an explicit `--limit` may take those too (a later part then finds the budget spent)."""
    if override is not None:
        return min(override, remaining)
    return remaining - later_shares


def run_part(part: str, report: Report, device: str, sizes: dict, inject: str | None):
    """One part, in its forked child. `inject` (tests): "error" raises, "hang" sleeps past the limit."""
    if inject == "error":
        raise RuntimeError("injected failure (--inject)")
    if inject == "hang":
        print(f"injected hang (--inject): pid {os.getpid()}", flush=True)
        time.sleep(10 ** 6)
    dev = torch.device(device)
    if part == "concurrency":
        from gpu_concurrency import concurrency as fn
    else:
        import gpu_parts
        fn = {"env": gpu_parts.env, "throughput": gpu_parts.throughput, "discovery": gpu_parts.discovery,
              "as": gpu_parts.agreement}[part]
    return fn(report, dev, **sizes)


def cuda_devices() -> int:
    """How many CUDA devices torch sees, asked in a forked child: torch.cuda.is_available() in a
    process makes every child it forks later fail at its first CUDA call ("poison fork"), and the
    parts fork (the reference loop, the processes sharing the GPU, the discovery configurations)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_device(device: str) -> None:
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise BadInput(f"--device {device}: {e}") from None
    if dev.type != "cuda":
        return
    try:
        count = call_forked(cuda_devices, timeout=120)
    except (ChildFailed, ChildTimeout) as e:
        raise BadInput(f"--device {device}: asking torch for CUDA devices failed ({e})") from None
    if count <= (dev.index or 0):
        raise BadInput(f"--device {device}: torch {torch.__version__} sees {count} CUDA device(s); run on the GPU "
                       f"machine, or add --dry-run to check the code on the CPU")


def key_values(items: list[str], what: str, cast) -> dict:
    out = {}
    for item in items:
        part, sep, value = item.partition("=")
        if not sep or part not in PARTS:
            raise BadInput(f"{what} {item!r}: expected PART=VALUE with PART one of {', '.join(PARTS)}")
        try:
            out[part] = cast(value)
        except ValueError:
            raise BadInput(f"{what} {item!r}: {value!r} is not a {cast.__name__}") from None
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S,
                   help=f"seconds for the whole run, torch's import included (default {DEFAULT_BUDGET_S}: "
                        f"a 600 s device command with room for its start); the parts' limits scale to it")
    p.add_argument("--dry-run", action="store_true", help="CPU, toy sizes: checks every code path in seconds")
    p.add_argument("--device", help="torch device (default: cuda; cpu with --dry-run)")
    p.add_argument("--out", default=os.environ.get("OUT"), help="report folder (default: $OUT, else a temp folder)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--limit", action="append", default=[], metavar="PART=S",
                   help="a part's time limit in seconds, instead of its share of the budget")
    p.add_argument("--inject", action="append", default=[], metavar="PART=error|hang",
                   help="make a part fail or hang (tests the failure path)")
    a = p.parse_args(argv)
    if a.budget < MARGIN_S + 5:
        raise BadInput(f"--budget {a.budget:g}: too short, give at least {MARGIN_S + 5} seconds")
    given = {s for s in a.parts.split(",") if s}
    unknown = given - set(PARTS)
    if unknown or not given:
        raise BadInput(f"--parts {a.parts!r}: unknown {', '.join(sorted(unknown)) or 'none given'}; "
                       f"choose from {','.join(PARTS)}")
    a.parts = [p for p in PARTS if p in given]  # always in value order: the budget keeps later parts' shares
    a.limit = key_values(a.limit, "--limit", float)
    a.inject = key_values(a.inject, "--inject", str)
    bad = {k: v for k, v in a.inject.items() if v not in ("error", "hang")}
    if bad:
        raise BadInput(f"--inject {next(iter(bad))}={next(iter(bad.values()))}: expected error or hang")
    a.device = a.device or ("cpu" if a.dry_run else "cuda")
    a.cifar10 = find_cifar10(ROOT, os.environ)
    check_device(a.device)
    return a


def run(a: argparse.Namespace) -> None:
    # A SIGTERM (e.g. from a shell's timeout) becomes an exception, so the running part's
    # process group is killed too instead of running on, holding the GPU.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="gpu_check."))
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out / "gpu_report.md")
    report.path.write_text("")
    if a.dry_run:
        # Inductor's C++ build takes minutes on a small CPU; the dry run keeps the compiled code path
        # (the torch.compile wrapper) and skips compilation itself.
        torch._dynamo.config.disable = True
        # Toy tensors on a shared small CPU: a contended thread pool costs 10-100x (tests/conftest.py).
        torch.set_num_threads(1)
    sizes = DRY if a.dry_run else FULL
    report.line(f"# taskdisc GPU check{' (dry run: CPU, toy sizes)' if a.dry_run else ''}")
    report.line()
    report.line(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')} on {platform.node()}; device `{a.device}`; "
                f"budget {a.budget:.0f} s; CIFAR-10: {a.cifar10}")
    try:
        found = run_parts(a, report, out, sizes)
    except BaseException as e:  # a SIGTERM, Ctrl-C or a bug here: say so where the reader looks
        report.line(f"\n**STOPPED**: the check itself stopped ({type(e).__name__}: {e}) after "
                    f"{time.monotonic() - START:.1f} s")
        raise
    report.line(f"\nTotal: {time.monotonic() - START:.1f} s of the {a.budget:.0f} s budget")
    if "device" in found and a.device != "cpu":
        name = "".join(c if c.isalnum() else "-" for c in found["device"]).strip("-")
        report.line(f"\nTo keep: `bench/results/{time.strftime('%Y-%m-%d')}-{name}.md`")
    print(f"report and logs in {out}")


def run_parts(a: argparse.Namespace, report: Report, out: Path, sizes: dict) -> dict:
    """Every selected part in order, each inside its limit; returns what part 1 found (the
    device's name and its measured bf16 rate), empty where it did not finish."""
    deadline = START + a.budget - MARGIN_S
    scale = (a.budget - MARGIN_S) / sum(SHARES[p] for p in a.parts)
    found: dict = {}
    for i, part in enumerate(PARTS, 1):
        if part not in a.parts:
            continue
        later = sum(SHARES[p] for p in a.parts[a.parts.index(part) + 1:]) * scale
        limit = part_limit(deadline - time.monotonic(), later, a.limit.get(part))
        report.line()
        report.line(f"## {i}. {TITLES[part]}")
        report.line()
        if limit < MIN_PART_S:
            report.line(f"**SKIPPED**: the budget is spent ({max(0.0, deadline - time.monotonic()):.1f} s left "
                        f"of {a.budget:.0f} s, {later:.0f} s kept for the parts after this one)")
            continue
        part_sizes = dict(sizes[part])
        if part in NEEDS_CIFAR10:
            part_sizes["cifar10"] = str(a.cifar10)
        if part == "throughput":
            part_sizes["bf16_tflops"] = found.get("bf16_tflops")
        began = time.monotonic()
        try:
            result = call_forked(run_part, part, report, a.device, part_sizes, a.inject.get(part), timeout=limit,
                                 log=str(out / f"part{i}-{part}.log"), new_group=True)
            if part == "env":
                found = result
        except ChildTimeout:
            report.line(f"\n**TIMEOUT**: part {i} ran past its limit of {limit:.0f} s and was killed; "
                        f"see part{i}-{part}.log")
        except ChildFailed as e:
            report.line(f"\n**FAILED**: {e}")
        report.line(f"\n_part {i}: {time.monotonic() - began:.1f} s (limit {limit:.0f} s)_")
    return found


def main(argv=None) -> None:
    try:
        a = parse_args(argv)
    except BadInput as e:
        print(f"gpu_check: {e}", file=sys.stderr)
        sys.exit(2)
    run(a)


if __name__ == "__main__":
    main()
