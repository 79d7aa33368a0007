"""Confidence of agreement scores: per task over its pairs, per task set over its tasks, set against set."""
from __future__ import annotations

import csv
import math

import pytest

from orchestrator.cli import main
from orchestrator.kinds.agreement.results import write_tables
from orchestrator.results.confidence import difference, estimate, set_estimates, t975, task_scores
from orchestrator.tracking.record import Record


@pytest.mark.parametrize("df, exact", [(1, 12.706), (4, 2.776), (11, 2.201), (20, 2.086), (30, 2.042),
                                       (31, 2.040), (100, 1.984), (10_000, 1.960), (2.5, 3.7425)])
def test_t_quantiles(df, exact):
    assert t975(df) == pytest.approx(exact, abs=0.002)


def test_estimate_and_welch_difference():
    e = estimate([0.70, 0.72, 0.74])
    assert (e.n, e.mean, e.std) == (3, pytest.approx(0.72), pytest.approx(0.02))
    assert e.half_width == pytest.approx(4.303 * 0.02 / math.sqrt(3), rel=1e-3)
    one = estimate([0.9])
    assert one.mean == 0.9 and math.isnan(one.std) and math.isnan(one.low)
    # Welch: a = 10 tasks (sd 0.05), b = 5 tasks (sd 0.10): df = 5.07 (by hand), se = 0.0474
    a, b = estimate([0.80 + 0.05 * z for z in (-1.5, -1, -0.5, 0, 0, 0, 0, 0.5, 1, 1.5)]), estimate(
        [0.60 + 0.1 * z for z in (-1.2, -0.4, 0, 0.4, 1.2)])
    d = difference(a, b)
    assert d.mean == pytest.approx(0.2)
    se = math.sqrt(a.std ** 2 / 10 + b.std ** 2 / 5)
    assert d.std == pytest.approx(se) and d.low < 0.2 - 2.4 * se and d.high > 0.2 + 2.4 * se


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
    assert main(["results", str(tmp_path), "--compare", "real", "discovered"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no task set 'discovered'" in err[0] and "its sets: random, real" in err[0]
