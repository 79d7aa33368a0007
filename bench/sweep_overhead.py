"""taskdisc's own cost per trial, against the sweep's size, on this machine's CPUs.

    python bench/sweep_overhead.py --sizes 200,1000,5000 --no-reuse-trials 0

1. A trivial trainable (one step, no work), `--trivial-trials` trials: wall time per trial with actor
   reuse (and without, for `--no-reuse-trials` > 0): Tune's own overhead.
2. The real agreement sweep (`run_sweep`: MLflow, the record, callbacks and end-of-sweep results
   included) over N tiny trials for each N of `--sizes`, 2 at once: overhead per trial (wall minus
   training, over N), the driver's peak memory growth during the sweep, the dataset loads per
   actor, the time `taskdisc results` takes on the sweep folder (a new process) and the time of the
   MLflow calls behind the runs page and behind listing every child run of the sweep. Then each
   size's overhead per trial as a ratio to the smallest size's, and the marginal overhead per trial
   between consecutive sizes (the difference of their total overheads over the difference of their
   trials): a sweep's fixed start and end (Ray, the actors, the writer process, figures) cancel out, so
   a per-trial cost that grows with the sweep shows as a growing marginal. The overhead per trial while
   trials ran (from the first trial's start to the last one's end) leaves the fixed start and end out
   too, and is printed with them.
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback-only local Ray
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")

import ray  # noqa: E402
from ray import tune  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from conftest import write_tiny_imagefolder  # noqa: E402
from sweep_helpers import tiny_spec  # noqa: E402

from orchestrator.kinds import load_spec  # noqa: E402
from orchestrator.launch import run_sweep  # noqa: E402
from orchestrator.tracking.record import Record  # noqa: E402


class Trivial(tune.Trainable):
    def setup(self, config):
        pass

    def step(self):
        return {"done": True}

    def reset_config(self, new_config):
        return True

    def save_checkpoint(self, checkpoint_dir):
        pass

    def load_checkpoint(self, checkpoint_dir):
        pass


def trivial_sweep(n: int, reuse: bool, storage: str) -> float:
    start = time.perf_counter()
    tune.Tuner(tune.with_resources(Trivial, {"cpu": 1}), param_space={"i": tune.grid_search(list(range(n)))},
               tune_config=tune.TuneConfig(reuse_actors=reuse),
               run_config=tune.RunConfig(storage_path=storage, name=f"trivial-{reuse}", verbose=0)).fit()
    return (time.perf_counter() - start) / n


class LoadCounter(tune.Callback):
    """Dataset loads per actor, when the first trial started and the last one ended, and the driver's
    memory then (before the results)."""

    def __init__(self):
        self.loads_by_pid: dict[int, int] = {}
        self.rss_at_end = 0.0
        self.first_start = self.last_end = None

    def on_trial_start(self, iteration, trials, trial, **info):
        self.first_start = self.first_start or time.perf_counter()

    def on_experiment_end(self, trials, **info):
        self.rss_at_end = rss_mb()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.last_end = time.perf_counter()
        r = trial.last_result
        self.loads_by_pid[r["pid"]] = max(self.loads_by_pid.get(r["pid"], 0), r["data/loads"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="200,1000", help="trials of each agreement sweep, e.g. 200,1000,5000")
    ap.add_argument("--trivial-trials", type=int, default=200, help="trials of the trivial trainable (0 = skip)")
    ap.add_argument("--no-reuse-trials", type=int, default=0, help="trials of the trivial trainable without "
                                                                   "actor reuse (0 = skip)")
    ap.add_argument("--profile", action="store_true", help="profile the driver during each agreement sweep and "
                                                           "print where its time goes (cumulative, top 25)")
    args = ap.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    tmp = Path(tempfile.mkdtemp(prefix="sweep-overhead-"))
    for n, reuse in ((args.trivial_trials, True), (args.no_reuse_trials, False)):
        if n > 0:
            per_trial = trivial_sweep(n, reuse, str(tmp / "tune"))
            print(f"trivial trainable, 2 CPUs: {per_trial * 1e3:.0f} ms/trial {'with' if reuse else 'without'} "
                  f"actor reuse ({n} trials)", flush=True)
    data = write_tiny_imagefolder(tmp / "tiny.tar.gz")
    measured = {n: agreement_sweep(n, tmp / f"n{n}", data, args.profile) for n in sizes}
    overheads = {n: total for n, (total, _) in measured.items()}
    base = sizes[0]
    print("overhead per trial against the sweep's size: " + ", ".join(
        f"{n}: {o * 1e3:.1f} ms ({o / overheads[base]:.2f}x)" for n, o in overheads.items()))
    print("overhead per trial while trials ran: " + ", ".join(
        f"{n}: {o * 1e3:.1f} ms ({o / measured[base][1]:.2f}x)" for n, (_, o) in measured.items()))
    marginal = {(a, b): (overheads[b] * b - overheads[a] * a) / (b - a) for a, b in zip(sizes, sizes[1:])}
    if marginal:
        first = next(iter(marginal.values()))
        print("marginal overhead per trial: " + ", ".join(
            f"{a}->{b}: {m * 1e3:.1f} ms ({m / first:.2f}x)" for (a, b), m in marginal.items()))


def agreement_sweep(n: int, folder: Path, data: Path, profile: bool = False) -> tuple[float, float]:
    """Run a sweep of `n` tiny trials in `folder`, print its costs, return its overhead per trial (s) over
    the whole sweep and while trials ran."""
    spec = load_spec(tiny_spec(folder, data, name="overhead", **{
        "tasks": {"random": f"0-{n - 1}"}, "protocol.epochs": 1, "protocol.width": 0.0625}))
    counter, memory = LoadCounter(), PeakRSS()
    start = time.perf_counter()
    profiler = cProfile.Profile() if profile else contextlib.nullcontext()
    with memory, profiler:
        [(_, rows)] = run_sweep(spec, callbacks=[counter])
    wall = time.perf_counter() - start
    if profile:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    training = sum(r["wall_s"] for r in rows) / 2  # two trials run at once
    overhead = (wall - training) / len(rows)
    # Between the first trial's start and the last one's end: the sweep's fixed start (Ray, actors, the
    # pool, the writer) and end (results, figures) left out.
    running = counter.last_end - counter.first_start
    steady = (running - training) / len(rows)
    print(f"agreement sweep, {len(rows)} tiny trials incl. MLflow + record: {wall / len(rows) * 1e3:.0f} ms/trial "
          f"wall, training {training / len(rows) * 1e3:.0f} ms, overhead {overhead * 1e3:.1f} ms; while trials ran: "
          f"{steady * 1e3:.1f} ms/trial overhead, fixed start "
          f"{counter.first_start - start:.1f} s and end {wall - (counter.last_end - start):.1f} s; dataset loads: "
          f"{sum(counter.loads_by_pid.values())} in {len(counter.loads_by_pid)} actors; driver RSS "
          f"{counter.rss_at_end - memory.before:+.0f} MB when the last trial ended, peak {memory.peak:.0f} MB, "
          f"{memory.peak - memory.before:+.0f} MB during the sweep (results and figures included)", flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "orchestrator", "results", str(spec.sweep_dir)], check=True,
                   capture_output=True, cwd=folder, env=dict(os.environ, PYTHONPATH=str(REPO)))
    results = time.perf_counter() - start
    start = time.perf_counter()
    Record(spec.sweep_dir).rows()
    print(f"taskdisc results on {len(rows)} trials: {results:.2f} s (process start included); reading the record: "
          f"{time.perf_counter() - start:.3f} s", flush=True)
    from mlflow.tracking import MlflowClient
    from orchestrator.tracking.mlflow_runs import Tracker
    client = MlflowClient(spec.tracking.uri)
    exp = client.get_experiment_by_name(spec.experiment).experiment_id
    start = time.perf_counter()
    client.search_runs([exp], max_results=100, order_by=["attributes.start_time DESC"])
    page = time.perf_counter() - start
    tracker = Tracker(spec.tracking.uri, spec.experiment)
    parent = json.loads((Path(spec.sweep_dir) / "mlflow.json").read_text())["parent_run_id"]
    start = time.perf_counter()
    children = tracker.children(parent)
    print(f"MLflow runs page (first 100 runs): {page:.2f} s; every child run of the sweep ({len(children)}): "
          f"{time.perf_counter() - start:.2f} s", flush=True)
    return overhead, steady


class PeakRSS:
    """The process's resident memory before a block and its peak during it (sampled every 20 ms), in MB."""

    def __enter__(self):
        self.before = self.peak = rss_mb()
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, rss_mb())
            time.sleep(0.02)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


if __name__ == "__main__":
    main()
