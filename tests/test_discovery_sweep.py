"""Discover-then-score as one spec and one command, with the real Ray and MLflow."""
from __future__ import annotations

import pyarrow.parquet as pq
import yaml
from mlflow.tracking import MlflowClient

from orchestrator.cli import load_any, main
from orchestrator.kinds.discovery.spec import DiscoverySpec
from sweep_helpers import REPO, child_runs
from trainables.task_table import read_table

TINY_DISCOVERY = {"arch": "mlp", "width": 0.125, "h_dim": 4, "n_linear_tasks": 4, "nsteps": 2,
                  "inner_batch_size": 32, "outer_batch_size": 32, "meta_steps": 6, "holdout": 60, "outer_pool": 60,
                  "probe_size": 64, "calibration_size": 128, "uniformity_coef": [5.0, 25.0]}


def discovery_spec(tmp_path, data):
    spec = {"kind": "discovery", "name": "disc", "dataset": {"name": "imagefolder", "root": str(data)},
            "discovery": TINY_DISCOVERY, "steps_per_report": 4, "resources": {"cpus": 1}, "concurrency": 2,
            "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}, "output_dir": str(tmp_path / "runs"),
            "score": {"protocol": {"arch": "mlp", "width": 0.125, "epochs": 2, "batch_size": 64, "holdout": 60,
                                   "compile": "off"},
                      "tasks": [0], "untrained": True, "baselines": {"random": "0-1"}},
            "splits": {"targets": {"kind": "real", "indices": [0]}, "rules": [0], "random": True, "half": 0,
                       "protocol": {"arch": "mlp", "width": 0.125, "epochs": 1, "batch_size": 64, "compile": "off"}}}
    path = tmp_path / "disc.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_discover_then_score(tmp_path, tiny_dataset_tar, ray_address, capsys):
    path = discovery_spec(tmp_path, tiny_dataset_tar)
    assert main(["sweep", str(path)]) == 0  # in-process: the CLI's own code, without a new interpreter
    out = capsys.readouterr().out

    # Two encoders (a uniformity_coef grid), each exported as task tables and a checkpoint.
    rows = pq.read_table(tmp_path / "runs" / "disc" / "discovery.parquet").to_pylist()
    assert len(rows) == 2 and all(r["steps"] == 6 for r in rows)
    for r in rows:
        names, values = read_table(r["table"])
        assert names == [f"discovered-{i}" for i in range(4)] and values.shape == (300, 4)
        assert read_table(r["untrained_table"])[1].shape == (300, 4)

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parents, children = child_runs(uri, "disc")
    assert sorted(p.info.run_name for p in parents) == ["disc", "disc-score", "disc-splits"]
    discover_runs = [c for c in children if c.info.run_name.startswith("discover ")]
    assert sorted(c.info.run_name for c in discover_runs) == [
        "discover s0 uniformity_coef-25.0", "discover s0 uniformity_coef-5.0"]
    assert sorted(c.data.tags["taskdisc.run"] for c in discover_runs) == [
        "disc__discover__seed0__uniformity_coef-25.0", "disc__discover__seed0__uniformity_coef-5.0"]
    client = MlflowClient(tracking_uri=uri)
    run = discover_runs[0]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "discovery/agreement_loss")] == list(range(1, 7))
    assert {"tasks.parquet", "encoder.pt", "discovered.csv", "untrained.parquet"} <= {
        a.path for a in client.list_artifacts(run.info.run_id)}

    # The score sweep: discovered and untrained tasks of each encoder, plus the random baseline.
    scored = pq.read_table(tmp_path / "runs" / "disc-score" / "results.parquet").to_pylist()
    groups = sorted({r["group"] for r in scored})
    assert groups == ["discovered_uniformity_coef-25.0", "discovered_uniformity_coef-5.0", "random",
                      "untrained_uniformity_coef-25.0", "untrained_uniformity_coef-5.0"]
    assert len(scored) == 2 * 2 * 1 + 2
    assert "discovered_uniformity_coef-5.0" in out  # the summary names every task set

    # The split sweep: real task 0 split by task 0 of each encoder, next to a random split of the same sizes.
    split_rows = pq.read_table(tmp_path / "runs" / "disc-splits" / "split_results.parquet").to_pylist()
    assert sorted(r["group"] for r in split_rows) == [
        "adversarial_discovered_uniformity_coef-25.0", "adversarial_discovered_uniformity_coef-5.0",
        "random_discovered_uniformity_coef-25.0", "random_discovered_uniformity_coef-5.0"]
    assert {r["rule_source"] for r in split_rows} == {r["table"] for r in rows}

    capsys.readouterr()
    assert main(["sweep", str(path)]) == 0  # in-process: the same CLI, no start-up
    again = capsys.readouterr().out
    assert "2 already recorded, 0 to run" in again
    assert "6 already recorded, 0 to run" in again and "4 already recorded, 0 to run" in again


def test_shipped_discovery_specs_are_papers_and_cpu_sized():
    paper = load_any(REPO / "specs" / "discovery-paper.yaml", [])
    assert isinstance(paper, DiscoverySpec)
    c = paper.configs[0]
    assert (c.arch, c.h_dim, c.n_linear_tasks, c.uniformity_coef, c.task_temp, c.nsteps, c.inner_lr, c.outer_lr) == (
        "resnet18", 32, 32, 25.0, 5.0, 50, 0.01, 1e-3)
    assert paper.resources.gpus > 0
    cpu = load_any(REPO / "specs" / "discovery-cpu.yaml", [])
    assert cpu.resources.gpus == 0 and cpu.score is not None
    grid = load_any(REPO / "specs" / "discovery-grid.yaml", [])
    assert len(grid.trials()) > 1


def test_shipped_adversarial_specs_follow_the_paper():
    paper = load_any(REPO / "specs" / "adversarial-paper.yaml", [])
    plan, follow = paper.splits.plan, paper.splits
    assert plan.targets.indices == (0, 11, 18, 27, 31, 38, 40) and follow.rules == tuple(range(8))
    p = follow.protocols[0]
    assert (p.arch, p.optimizer, p.lr, p.batch_size, p.epochs) == ("resnet18", "adam", 1e-3, 512, 100)
    assert set(plan.labels) == {"target", "classes"} and paper.resources.gpus > 0
    cpu = load_any(REPO / "specs" / "adversarial-cpu.yaml", [])
    assert cpu.resources.gpus == 0 and len(cpu.splits.plan.targets.indices) >= 3
