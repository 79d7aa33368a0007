"""Discovery's hyperparameters searched by Tune's Population Based Training: the `search:` section's
checks, the exploit path (another trial's encoder under new hyperparameters) and a real tiny search."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from orchestrator.tracking.record import Record
from orchestrator.cli import main
from orchestrator.kinds import load_spec
from orchestrator.kinds.discovery.search import DiscoverySearch
from orchestrator.kinds.discovery.trial import DiscoveryRunner
from sweep_helpers import write_spec
from test_discovery_sweep import TINY_DISCOVERY

POPULATION = {**TINY_DISCOVERY, "meta_steps": 14, "quick_eval_every": 4, "quick_eval_tasks": 1, "quick_eval_epochs": 1,
              "quick_eval_train_subset": 100, "quick_eval_holdout_subset": 50}


def pbt_spec(tmp_path, data, name="pbt", **overrides):
    spec = {"kind": "discovery", "name": name, "dataset": {"name": "imagefolder", "root": str(data)}, "discovery": POPULATION,
            "steps_per_report": 2, "resources": {"cpus": 1}, "output_dir": str(tmp_path / "runs"),
            "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
            "search": {"scheduler": "pbt", "perturbation_interval": 4, "quantile_fraction": 0.5}}
    return write_spec(tmp_path, name, spec, overrides)


CASES = [
    ("one point", ["discovery.uniformity_coef=5.0"], "search.scheduler=pbt needs a population"),
    ("concurrency below the population", ["concurrency=1"], "concurrency=1 is invalid with search.scheduler=pbt"),
    ("interval off the reports", ["search.perturbation_interval=3"],
     "search.perturbation_interval=3 is invalid: expected a multiple of steps_per_report=2"),
    ("interval off the quick evaluations", ["discovery.quick_eval_every=8"],
     "expected a multiple of discovery.quick_eval_every=8"),
    ("interval past the end", ["search.perturbation_interval=16"], "expected fewer than discovery.meta_steps=14"),
    ("no quick evaluation", ["discovery.quick_eval_every=null"], "set discovery.quick_eval_every"),
    ("a structural field mutated", ["search.mutate=[h_dim]"], "DiscoverySearch.mutate=['h_dim'] is invalid"),
    ("a structural field varied", ["discovery.h_dim=[4, 8]"], "discovery.h_dim varies across the population"),
    ("quantile above a half", ["search.quantile_fraction=0.9"], "search.quantile_fraction=0.9 is invalid"),
    ("range backwards", ["search.outer_lr_range=[0.1, 0.01]"], "DiscoverySearch.outer_lr_range=[0.1, 0.01]"),
    ("start outside its range", ["search.uniformity_coef_range=[1, 10]"],
     "discovery.uniformity_coef=25.0 is outside search.uniformity_coef_range=[1.0, 10.0]"),
    ("negative penalty", ["search.similarity_penalty=-1"], "search.similarity_penalty=-1.0 is invalid"),
    ("unknown scheduler", ["search.scheduler=hyperband"], "search.scheduler='hyperband' is invalid"),
    ("unknown key", ["search.burn_in=3"], "unknown key search.burn_in"),
]


@pytest.mark.parametrize("overrides, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_search_is_one_line_exit_2_nothing_written(overrides, message, tmp_path, tiny_dataset_tar, capsys,
                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = pbt_spec(tmp_path / "spec", tiny_dataset_tar, **{"tracking.uri": None, "output_dir": "runs"})
    args = [a for o in overrides for a in ("--set", o)]
    assert main(["sweep", str(spec), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("taskdisc: error: ") and message in err[0], err
    assert [p.name for p in tmp_path.iterdir()] == ["spec"]  # no runs/, mlflow.db


def test_objective_penalises_collapsed_and_constant_task_sets():
    search = DiscoverySearch()
    diverse = {"eval/agreement_mean": 0.9, "discovery/similarity": 0.5, "discovery/balance": 0.5}
    assert search.objective(diverse) == pytest.approx(0.9)
    assert search.objective({**diverse, "discovery/similarity": 1.0}) == pytest.approx(-0.1)
    assert search.objective({**diverse, "eval/agreement_mean": 1.0, "discovery/balance": 1.0}) == pytest.approx(0.0)
    assert search.objective({"discovery/similarity": 0.5, "discovery/balance": 0.5}) is None  # no quick AS


def test_exploit_takes_the_donors_encoder_under_the_new_hyperparameters(tmp_path, tiny_dataset_tar, one_thread):
    donor_trial, trial = load_spec(pbt_spec(tmp_path, tiny_dataset_tar)).trials()
    cache: dict = {}
    donor = DiscoveryRunner(donor_trial, "cpu", cache)
    assert math.isnan(donor.step()["search/objective"])  # step 2: no quick evaluation yet, still reported
    state = donor.state_dict()

    new = {"uniformity_coef": 40.0, "task_temp": 2.0, "inner_lr": 0.3, "outer_lr": 0.02}
    explored = DiscoveryRunner(dataclasses.replace(trial, tuned=new), "cpu", cache)
    explored.load_state_dict(state)
    assert explored.run.steps == 2
    assert all(torch.equal(a, b) for a, b in zip(explored.run.encoder.state_dict().values(),
                                                  donor.run.encoder.state_dict().values()))
    assert [g["lr"] for g in explored.run.optimizer.param_groups] == [0.02]
    assert explored.run.optimizer.state_dict()["state"][0]["step"] == 2  # Adam's moments came along
    assert explored.schedule[-1] == {"from_step": 2, "run": trial.run_name, **new}
    assert explored.schedule[0]["run"] == donor_trial.run_name

    result = explored.step()
    m = result["history"][0]
    assert m["discovery/loss"] == pytest.approx(m["discovery/agreement_loss"] + 40.0 * m["discovery/uniformity_loss"])
    assert m["search/uniformity_coef"] == 40.0 and math.isfinite(result["search/objective"])

    # Its own state under other values is not an exploit: a resume must match the config it was saved under.
    own = DiscoveryRunner(dataclasses.replace(donor_trial, tuned={**donor_trial.tuned, "task_temp": 9.0}), "cpu", cache)
    with pytest.raises(ValueError, match="differs in task_temp"):
        own.load_state_dict(state)


@pytest.mark.slow
def test_a_real_pbt_search_records_each_trial_once_with_its_schedule(tmp_path, tiny_dataset_tar, ray_address,
                                                                     capsys):
    spec = pbt_spec(tmp_path, tiny_dataset_tar)
    assert main(["sweep", str(spec)]) == 0
    trials = load_spec(spec).trials()
    table = Record(tmp_path / "runs" / "pbt").table()  # one row per key: check there are no others
    assert table.num_rows == len(trials) and sorted(table.column("key").to_pylist()) == sorted(t.key for t in trials)
    rows = table.to_pylist()
    schedules = [json.loads(r["schedule"]) for r in rows]
    exploited = [(r, s) for r, s in zip(rows, schedules) if len(s) > 1]
    assert exploited, schedules  # quantile 0.5 of 2: the worse one copies the better at its decisions
    for row, schedule in exploited:
        final = json.loads(row["final_config"])
        assert {k: final[k] for k in schedule[-1] if k not in ("from_step", "run")} == {
            k: v for k, v in schedule[-1].items() if k not in ("from_step", "run")}
        assert schedule[-1]["run"] == row["run_name"] and schedule[-1]["from_step"] in (4, 8, 12)
    assert all(r["steps"] == 14 and "search/objective" in r for r in rows)
    assert not list((tmp_path / "runs" / "pbt" / "tune").rglob("checkpoint_*"))  # dropped at the end

    capsys.readouterr()
    assert main(["sweep", str(spec)]) == 0
    assert "2 already recorded, 0 to run" in capsys.readouterr().out


def test_shipped_pbt_and_grid_specs_compare_the_same_points_and_budget():
    from orchestrator.cli import load_any
    from sweep_helpers import REPO
    pbt, grid = (load_any(REPO / "specs" / f"discovery-{arm}-cpu.yaml", []) for arm in ("pbt", "grid"))
    assert pbt.scheduler_config()[0] == "pbt" and grid.scheduler_config() is None
    assert pbt.configs == grid.configs and len(pbt.configs) == 4
    assert pbt.score.best == grid.score.best == 1 and pbt.score.protocols == grid.score.protocols
