"""Tune's per-trial overhead and dataset loads per actor, on this machine's CPUs.

    python bench/sweep_overhead.py --trials 200 --no-reuse-trials 50

1. A trivial trainable (one step, no work): sweep wall time per trial with actor reuse and
   without; the difference to zero work is Tune's overhead.
2. The real agreement sweep (`run_sweep`, MLflow and record included) over `--trials` tiny
   trials: wall time per trial, how many times the dataset was loaded (once per actor), the
   driver's peak memory, then the time `taskdisc results` takes on the sweep folder and the time
   of the MLflow calls behind the runs page (the first 100 runs of the experiment, newest first)
   and behind listing every child run of the sweep.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
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

from orchestrator.specs.agreement import load_spec  # noqa: E402
from orchestrator.launch import run_sweep  # noqa: E402


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
    def __init__(self):
        self.loads_by_pid: dict[int, int] = {}

    def on_trial_complete(self, iteration, trials, trial, **info):
        r = trial.last_result
        self.loads_by_pid[r["pid"]] = max(self.loads_by_pid.get(r["pid"], 0), r["data/loads"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--no-reuse-trials", type=int, default=50, help="trials for the slow no-reuse case")
    args = ap.parse_args()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    tmp = Path(tempfile.mkdtemp(prefix="sweep-overhead-"))

    with_reuse = trivial_sweep(args.trials, True, str(tmp / "tune"))
    print(f"trivial trainable, 2 CPUs: {with_reuse * 1e3:.0f} ms/trial with actor reuse ({args.trials} trials)")
    if args.no_reuse_trials:
        without = trivial_sweep(args.no_reuse_trials, False, str(tmp / "tune"))
        print(f"trivial trainable, 2 CPUs: {without * 1e3:.0f} ms/trial without ({args.no_reuse_trials} trials)")

    data = write_tiny_imagefolder(tmp / "tiny.tar.gz")
    spec = load_spec(tiny_spec(tmp, data, name="overhead", **{
        "tasks": {"random": f"0-{args.trials - 1}"}, "protocol.epochs": 1, "protocol.width": 0.0625}))
    counter = LoadCounter()
    rss_before = peak_rss_mb()
    start = time.perf_counter()
    rows = run_sweep(spec, callbacks=[counter])
    wall = time.perf_counter() - start
    compute = sum(r["wall_s"] for r in rows) / 2  # two trials run at once
    print(f"agreement sweep, {len(rows)} tiny trials incl. MLflow + record: {wall / len(rows) * 1e3:.0f} ms/trial "
          f"wall, of which training {compute / len(rows) * 1e3:.0f} ms; dataset loads: "
          f"{sum(counter.loads_by_pid.values())} in {len(counter.loads_by_pid)} actors; driver peak RSS "
          f"{peak_rss_mb():.0f} MB ({rss_before:.0f} MB before the sweep)")

    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "orchestrator", "results", str(spec.sweep_dir)], check=True,
                   capture_output=True, cwd=tmp, env=dict(os.environ, PYTHONPATH=str(REPO)))
    print(f"taskdisc results on {len(rows)} trials: {time.perf_counter() - start:.2f} s (process start included)")
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
          f"{time.perf_counter() - start:.2f} s")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


if __name__ == "__main__":
    main()
