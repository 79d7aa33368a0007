"""Fidelity study: candidates of a reference protocol in one spec, scored on the same tasks, and the
report (rank correlation, |AS difference|, real-random separation kept, cost)."""
from __future__ import annotations

import math

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.results.fidelity import CEILING, fidelity_table
from orchestrator.results.fidelity_files import metrics, report
from orchestrator.results.rank_agreement import fisher_interval, leave_one_out, seed_to_seed, spearman
from orchestrator.kinds import load_spec, spec_data
from orchestrator.specs.io import SpecError
from sweep_helpers import child_runs, tiny_spec

STUDY = {"candidates": {"half-data": {"train_subset": 100}, "sgd": {"optimizer": "sgd", "lr": 0.01}},
         "read_epochs": [1]}


def test_spearman_with_ties():
    # by hand: ranks of [1, 1, 2, 3] are [1.5, 1.5, 3, 4]; Pearson of those with [1, 2, 3, 4] = 4.5 / sqrt(5 * 4.5)
    assert spearman([1, 2, 3, 4], [1, 1, 2, 3]) == pytest.approx(math.sqrt(0.9))
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)  # 1 - 6 * 4 / (5 * 24)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))
    # Fisher's z, variance 1.06 / (n - 3): r 0.9 over 16 tasks -> tanh(1.4722 -+ 1.96 * 0.2856) = [0.7224, 0.9662]
    assert fisher_interval(0.9, 16) == pytest.approx((0.7224, 0.9662), abs=1e-4)
    assert all(math.isnan(x) for x in fisher_interval(0.9, 3))


def test_leave_one_out_by_hand():
    # 4 tasks, 3 seeds: seeds 0 and 1 rank them 1234, seed 2 swaps the last two
    ref = {0: {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}, 1: {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4},
           2: {"a": 0.1, "b": 0.2, "c": 0.4, "d": 0.3}}
    ref = {s: {(t, 0, "real"): v for t, v in scores.items()} for s, scores in ref.items()}
    # seed 0 against the mean of 1 and 2 ([.1, .2, .35, .35], ranks 1 2 3.5 3.5): 4.5 / sqrt(5 * 4.5) = 0.9487;
    # seed 1 the same; seed 2 against 1234: 1 - 6 * 2 / 60 = 0.8
    loo = leave_one_out(ref)
    assert loo.values == pytest.approx((math.sqrt(0.9),) * 2 + (0.8,)) and loo.tasks == 4
    assert seed_to_seed(ref).values == pytest.approx((1.0, 0.8, 0.8))


def rows_of(point, scores: dict[tuple[str, int], list[float]], curve=lambda a: [a], wall=1.0):
    return [{"key": f"{point}-{g}-{i}-{s}", "group": g, "kind": g, "index": i, "seed": s, "agreement": a,
             "agreement_by_epoch": curve(a), "epochs": len(curve(a)), "wall_s": wall}
            for (g, i), values in scores.items() for s, a in enumerate(values)]


def test_fidelity_table_from_rows():
    ref = {("real", 0): [0.9], ("real", 1): [0.8], ("random", 0): [0.6]}
    rows = (rows_of("reference", ref, lambda a: [a - 0.2, a - 0.1, a], wall=3)
            + rows_of("fast", {("real", 0): [0.85], ("real", 1): [0.75], ("random", 0): [0.62]}))
    table = {r["candidate"]: r for r in fidelity_table(rows, {r["key"]: r["key"].split("-")[0] for r in rows}, (1,))}
    fast, read = table["fast"], table["epochs-1 (read)"]
    assert fast["spearman"] == pytest.approx(1) and fast["cost"] == pytest.approx(1 / 3)
    assert fast["mean_abs_diff"] == pytest.approx(0.04) and fast["max_abs_diff"] == pytest.approx(0.05)
    assert fast["separation_kept"] == pytest.approx((0.8 - 0.62) / (0.85 - 0.6))
    assert read["cost"] == pytest.approx(1 / 3) and read["spearman"] == pytest.approx(1)
    assert fast["as_good"] is None and CEILING not in table  # one seed: no ceiling to judge against


def test_candidates_are_judged_against_the_reference_seed_to_seed_agreement():
    """Three seeds of 8 tasks: a candidate that ranks each seed's tasks as the reference does, shifted,
    is as good as it; one that ranks them backwards is not; one missing a seed is left out."""
    base = [0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55]
    noise = {0: [0, 0, 0, 0, 0, 0, 0, 0], 1: [0, 0.06, 0, 0, 0, 0, 0, 0], 2: [0, 0, 0, 0, 0, 0.06, 0, 0]}
    scores = {("real" if i < 4 else "random", i): [base[i] + noise[s][i] for s in range(3)] for i in range(8)}
    rows = rows_of("reference", scores, wall=2)
    rows += rows_of("shifted", {t: [v - 0.05 for v in vs] for t, vs in scores.items()})
    rows += rows_of("backwards", {t: [1.5 - v for v in vs] for t, vs in scores.items()})
    rows += rows_of("twoseeds", {t: vs[:2] for t, vs in scores.items()})
    table = {r["candidate"]: r for r in fidelity_table(rows, {r["key"]: r["key"].split("-")[0] for r in rows}, ())}
    top = table[CEILING]
    assert top["seeds"] == 3 and top["ci95_low"] < top["spearman"] < top["ci95_high"]
    assert table["shifted"]["spearman"] == pytest.approx(top["spearman"]) and table["shifted"]["as_good"]
    assert table["shifted"]["cost"] == pytest.approx(0.5) and table["shifted"]["mean_abs_diff"] == pytest.approx(0.05)
    assert table["backwards"]["spearman"] < top["ci95_low"] and table["backwards"]["as_good"] is False
    assert "twoseeds" not in table
    assert {"spearman_real", "spearman_random"} <= set(table["shifted"])
    text = report(list(table.values()))
    assert "ceiling:" in text and "no candidate is 3x cheaper" in text
    assert metrics(list(table.values()))["fidelity/shifted/as_good"] == 1.0


def test_study_spec_names_points_and_round_trips(tmp_path, tiny_dataset_tar):
    spec = load_spec(tiny_spec(tmp_path, tiny_dataset_tar, name="fid", fidelity=STUDY))
    assert len(spec.protocols) == 3 and spec.protocols[2].optimizer == "sgd" and spec.protocols[1].train_subset == 100
    names = sorted({t.run_name.split("__seed0")[1] for t in spec.iter_trials()})
    assert names == ["__half-data", "__reference", "__sgd"] and spec.trial_count() == 18
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(spec_data(spec)))  # the resolved spec saved with the results loads as the same study
    assert load_spec(again).protocols == spec.protocols and spec_data(spec)["fidelity"] == STUDY


def test_protocol_presets(tmp_path, tiny_dataset_tar):
    from trainables.protocol import PRESETS
    for name, fields in PRESETS.items():
        spec = load_spec(tiny_spec(tmp_path, tiny_dataset_tar, name="p", protocol={"preset": name, "epochs": 2}))
        assert spec.protocols[0].epochs == 2  # a field beside the preset wins
        assert all(getattr(spec.protocols[0], k) == v for k, v in fields.items() if k != "epochs")
    with pytest.raises(SpecError, match="protocol.preset='nope' is unknown; presets: quickstart-cpu, ranking-cpu"):
        load_spec(tiny_spec(tmp_path, tiny_dataset_tar, name="p", protocol={"preset": "nope"}))


@pytest.mark.parametrize("study, message", [
    ({"candidates": {"x": {"precision": "fp16"}}}, "fidelity.candidates.x.precision='fp16' is invalid"),
    ({"candidates": {"x": {"epochs": 3}}}, "fidelity.candidates.x is the same protocol as reference"),
    ({"candidates": {"a": {"lr": 0.1}, "b": {"lr": 0.1}}}, "fidelity.candidates.b is the same protocol as a"),
    ({"read_epochs": [3]}, "read_epochs must list epochs from 1 to 2"),
    ({"candidate": {}}, "unknown key fidelity.candidate; valid keys: candidates, read_epochs"),
    ({"candidates": {"reference": {"lr": 0.1}}}, "not 'reference'"),
])
def test_bad_studies_are_one_line_errors(tmp_path, tiny_dataset_tar, study, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_spec(tiny_spec(tmp_path, tiny_dataset_tar, name="fid", fidelity=study))
    with pytest.raises(SpecError, match="one reference protocol"):
        load_spec(tiny_spec(tmp_path, tiny_dataset_tar, name="fid", fidelity=STUDY, **{"protocol.lr": [0.1, 0.2]}))


@pytest.mark.slow
def test_study_sweep_reports_each_candidate(tmp_path, tiny_dataset_tar, ray_address, capsys):
    study = {"candidates": {"sgd": {"optimizer": "sgd", "lr": 0.01}}, "read_epochs": [1, 2]}
    spec = tiny_spec(tmp_path, tiny_dataset_tar, name="fid", tasks={"real": [0], "random": [0]}, fidelity=study)
    assert main(["sweep", str(spec)]) == 0
    out = capsys.readouterr().out
    report = out.split("fidelity against the reference protocol")[1]
    assert all(name in report for name in ("epochs-1 (read)", "epochs-2 (read)", "sgd"))
    assert "real/reference" in out and "random/sgd" in out  # sets are summarised per protocol point
    (parent,), _ = child_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "fid")
    assert {"fidelity/sgd/spearman", "fidelity/epochs-1/cost"} <= set(parent.data.metrics)
    assert (tmp_path / "runs" / "fid" / "fidelity.png").is_file()
