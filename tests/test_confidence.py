"""Confidence of agreement scores: per task over its pairs, per task set over its tasks, set against set."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.launch import open_sweep
from orchestrator.kinds.agreement.results import finish_sweep, write_tables
from orchestrator.results.confidence import difference, estimate, set_estimates, t975, task_scores
from orchestrator.results.rank_agreement import agreement_lines, agreement_metrics
from orchestrator.kinds import load_spec, spec_data
from orchestrator.tracking.record import Record
from orchestrator.kinds.agreement.trial import agreement_row
from sweep_helpers import child_runs, tiny_spec


@pytest.mark.parametrize("df, exact", [(1, 12.706), (4, 2.776), (11, 2.201), (20, 2.086), (30, 2.042),
                                       (31, 2.040), (100, 1.984), (10_000, 1.960)])
def test_t_quantiles(df, exact):  # printed tables of Student's t, 3 decimals
    assert t975(df) == pytest.approx(exact, abs=0.0006)
    assert math.isnan(t975(0.5))


def test_estimate_and_welch_difference():
    e = estimate([0.70, 0.72, 0.74])
    assert (e.n, e.mean, e.std) == (3, pytest.approx(0.72), pytest.approx(0.02))
    assert e.high - e.mean == pytest.approx(e.mean - e.low) == pytest.approx(4.303 * 0.02 / math.sqrt(3), rel=1e-3)
    one = estimate([0.9])
    assert one.mean == 0.9 and math.isnan(one.std) and math.isnan(one.low)
    # an AS interval stays in [0, 1]: 0.9933 +- 4.303 * 0.01155 / sqrt(3) = [0.9646, 1.0220] -> [0.9646, 1]
    near_one = estimate([0.98, 1.0, 1.0])
    assert near_one.low == pytest.approx(0.9646, abs=1e-4) and near_one.high == 1.0
    # Welch by hand: variances 0.01 and 0.04 over 3 each: se = sqrt(0.05 / 3) = 0.1291,
    # df = (0.05/3)^2 / ((0.01/3)^2/2 + (0.04/3)^2/2) = 50/17 = 2.94 (t between 3.182 at 3 and 4.303 at 2)
    d = difference([0.1, 0.2, 0.3], [0.5, 0.7, 0.9])
    assert (d.n, d.mean, d.std) == (3, pytest.approx(-0.5), pytest.approx(0.12910, abs=1e-5))
    assert d.high - d.mean == pytest.approx(d.mean - d.low) == pytest.approx(t975(50 / 17) * 0.12910, abs=1e-4)
    assert 3.182 < t975(50 / 17) < 4.303
    assert difference([0.0, 0.0, 0.02], [0.95, 0.97, 1.0]).low >= -1  # a difference of AS stays in [-1, 1]
    same = difference([0.5, 0.5], [0.4, 0.4])
    assert (same.mean, same.low, same.high) == (pytest.approx(0.1), pytest.approx(0.1), pytest.approx(0.1))


def rows_of(scores: dict[tuple[str, int], list[float]]) -> list[dict]:
    return [{"key": f"{g}-{i}__seed{s}__p", "group": g, "index": i, "seed": s, "protocol_hash": "p",
             "run_name": f"sw__{g}-{i}__seed{s}", "agreement": a, "holdout_acc_0": a, "holdout_acc_1": a}
            for (g, i), values in scores.items() for s, a in enumerate(values)]


ROWS = rows_of({("real", 0): [0.80, 0.84, 0.82], ("real", 1): [0.90, 0.88, 0.92], ("real", 2): [0.85, 0.86, 0.84],
                ("random", 0): [0.62, 0.66, 0.64], ("random", 1): [0.60, 0.58, 0.59]})


def test_task_scores_group_pairs_of_a_task(tmp_path):
    scores = {(s["group"], s["index"]): s for s in task_scores(ROWS)}
    assert scores["real", 1]["seeds"] == 3 and scores["real", 1]["mean_as"] == pytest.approx(0.90)
    assert scores["real", 1]["ci95_low"] < 0.90 < scores["real", 1]["ci95_high"]
    sets = set_estimates(list(scores.values()))
    assert sets["real"].n == 3 and sets["real"].mean == pytest.approx((0.82 + 0.90 + 0.85) / 3)
    paths = write_tables(ROWS, task_scores(ROWS), tmp_path)
    assert [p.name for p in paths] == ["results.parquet", "agreement_table.csv", "task_scores.csv"]
    table = list(csv.DictReader(open(paths[2])))
    assert len(table) == 5 and {"seeds", "mean_as", "std_as", "ci95_low", "ci95_high"} <= set(table[0])


def test_results_compare_sets(tmp_path, capsys):
    record = Record(tmp_path)
    for r in ROWS:
        record.add(r["key"], r)
    assert main(["results", str(tmp_path), "--compare", "real", "random"]) == 0
    out = capsys.readouterr().out
    assert "95% interval" in out and "(95%, 3 seeds)" in out and "real-1" in out.split("top")[1].splitlines()[1]
    line = next(line for line in out.splitlines() if line.startswith("real - random:"))
    assert "+0.2417" in line and "3 vs 2 tasks" in line
    per_task = out.split("per task:")[1].splitlines()
    # real-1: 0.90, 0.88, 0.92: sd 0.02, 0.90 +- 4.303 * 0.02 / sqrt(3) = [0.8503, 0.9497]
    assert any(line.split() == ["real-1", "0.9000", "[0.8503,", "0.9497]", "3", "seeds"] for line in per_task)
    assert sum(line.startswith("  r") for line in per_task) == 5
    assert "seed-to-seed Spearman, 3 pairs of seeds: all 1.000" in out  # every seed ranks these 5 tasks alike
    assert main(["results", str(tmp_path), "--compare", "real", "discovered"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no task set 'discovered'" in err[0] and "its sets: random, real" in err[0]


def test_one_seed_prints_no_per_task_intervals(tmp_path, capsys):
    record = Record(tmp_path)
    for r in ROWS:
        if r["seed"] == 0:
            record.add(r["key"], r)
    assert main(["results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "per task:" not in out and "seed-to-seed" not in out


def test_seed_to_seed_agreement_by_hand():
    # seed 0 ranks 5 tasks 1..5, seed 1 swaps the first two and the next two: sum d^2 = 4,
    # Spearman 1 - 6 * 4 / (5 * 24) = 0.8; Fisher: atanh(0.8) -+ 1.96 * sqrt(1.06 / 2) -> [-0.3170, 0.9873]
    rows = rows_of({("real", i): [a, b] for i, (a, b) in enumerate(zip((0.1, 0.2, 0.3, 0.4, 0.5),
                                                                       (0.2, 0.1, 0.4, 0.3, 0.5)))})
    (line,) = agreement_lines(rows)
    assert line == "seed-to-seed Spearman, 1 pairs of seeds: all 0.800 [-0.317, 0.987] (5 tasks)"
    assert agreement_metrics(rows) == {"sweep/seed_spearman": pytest.approx(0.8),
                                       "sweep/seed_spearman_ci95_low": pytest.approx(-0.3170, abs=1e-4),
                                       "sweep/seed_spearman_ci95_high": pytest.approx(0.9873, abs=1e-4)}
    assert agreement_lines(rows_of({("real", i): [0.1 * i] for i in range(5)})) == []  # one seed: nothing to say


def test_parent_run_carries_seed_agreement(tmp_path, tiny_dataset_tar):
    """finish_sweep on a 3-seed record logs the seed-to-seed Spearman to the sweep's parent run in a
    real MLflow store (SQLite), over all tasks and within each task set."""
    spec = load_spec(tiny_spec(tmp_path, tiny_dataset_tar, name="seeds", seeds=[0, 1, 2], tasks={"real": "0-3",
                                                                                                 "random": "0-3"}))
    by_seed = {0: (0.80, 0.75, 0.70, 0.65, 0.60, 0.58, 0.56, 0.54), 1: (0.78, 0.76, 0.69, 0.66, 0.58, 0.60, 0.55, 0.53),
               2: (0.79, 0.74, 0.71, 0.67, 0.61, 0.57, 0.52, 0.55)}
    trials = list(spec.iter_trials())
    order = sorted({(t.group, t.index) for t in trials})[::-1]  # real 3..0, then random 3..0
    order = [o for o in order if o[0] == "real"] + [o for o in order if o[0] == "random"]
    rows = []
    for t in trials:
        a = by_seed[t.seed][order.index((t.group, t.index))]
        rows.append(agreement_row(t, {"task": f"{t.group}-{t.index}", "agreement": a, "balance": 0.5, "epochs": 3,
                                      "wall_s": 1.0, "images_per_s": 100.0, "agreement_by_epoch": [a - 0.1, a - 0.05, a],
                                      "train_acc": (0.9, 0.9), "holdout_acc": (a, a), "test_acc": (a, a)}))
    Path(spec.sweep_dir).mkdir(parents=True)
    _, log = open_sweep(spec, yaml.safe_dump(spec_data(spec)), {"name": spec.name})
    finish_sweep(spec, rows, log, complete=True)
    assert log.flush() == 0
    (parent,), _ = child_runs(spec.tracking.uri, spec.experiment)
    m = parent.data.metrics
    expected = agreement_metrics(rows)
    assert {"sweep/seed_spearman", "sweep/real/seed_spearman", "sweep/random/seed_spearman"} <= set(m)
    assert all(m[k] == pytest.approx(v) for k, v in expected.items())
    # real tasks: every seed ranks them alike (1.0); random: ranks 4321, 3421, 4312: seeds 0-1 and 0-2 have
    # sum d^2 = 2 (Spearman 1 - 12/60 = 0.8), seeds 1-2 sum d^2 = 4 (0.6): mean 0.7333
    assert m["sweep/real/seed_spearman"] == pytest.approx(1.0)
    assert m["sweep/random/seed_spearman"] == pytest.approx((0.8 + 0.8 + 0.6) / 3)
    assert parent.info.status == "FINISHED"
