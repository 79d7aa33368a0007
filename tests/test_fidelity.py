"""Fidelity study: candidates of a reference protocol in one spec, scored on the same tasks, and the
report (rank correlation, |AS difference|, real-random separation kept, cost)."""
from __future__ import annotations

import math

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.results.fidelity import fidelity_table, ranks, spearman
from orchestrator.kinds import load_spec, spec_data
from orchestrator.specs.io import SpecError
from sweep_helpers import child_runs, tiny_spec

STUDY = {"candidates": {"half-data": {"train_subset": 100}, "sgd": {"optimizer": "sgd", "lr": 0.01}},
         "read_epochs": [1]}


def test_spearman_with_ties():
    assert list(ranks([0.5, 0.7, 0.5, 0.9])) == [1.5, 3, 1.5, 4]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))


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


def test_fidelity_table_from_rows():
    def row(point, kind, index, agreement, curve, wall):
        return {"key": f"{point}-{kind}-{index}", "group": kind, "kind": kind, "index": index, "seed": 0,
                "agreement": agreement, "agreement_by_epoch": curve, "epochs": len(curve), "wall_s": wall}
    rows = [row("reference", "real", 0, 0.9, [0.7, 0.8, 0.9], 3), row("reference", "real", 1, 0.8, [0.6, 0.7, 0.8], 3),
            row("reference", "random", 0, 0.6, [0.65, 0.6, 0.6], 3),
            row("fast", "real", 0, 0.85, [0.85], 1), row("fast", "real", 1, 0.75, [0.75], 1),
            row("fast", "random", 0, 0.62, [0.62], 1)]
    table = {r["candidate"]: r for r in fidelity_table(rows, {r["key"]: r["key"].split("-")[0] for r in rows}, (1,))}
    fast, read = table["fast"], table["epochs-1 (read)"]
    assert fast["spearman"] == pytest.approx(1) and fast["cost"] == pytest.approx(1 / 3)
    assert fast["mean_abs_diff"] == pytest.approx(0.04) and fast["max_abs_diff"] == pytest.approx(0.05)
    assert fast["separation_kept"] == pytest.approx((0.8 - 0.62) / (0.85 - 0.6))
    assert read["spearman"] == pytest.approx(0.5) and read["cost"] == pytest.approx(1 / 3)
    assert not any(name.startswith("reference") for name in table)  # one seed: no seed-noise row

    # A second seed of the reference gives the floor a one-pair candidate is measured against.
    seed1 = [{**r, "key": r["key"] + "-s1", "seed": 1, "agreement": r["agreement"] + d}
             for r, d in zip(rows[:3], (0.0, 0.15, 0.01))]
    table = {r["candidate"]: r for r in fidelity_table(rows + seed1, {r["key"]: r["key"].split("-")[0]
                                                                     for r in rows + seed1}, ())}
    noise = table["reference seed 1 vs 0"]
    assert noise["spearman"] == pytest.approx(0.5) and noise["max_abs_diff"] == pytest.approx(0.15)
    assert noise["cost"] == 1 and table["fast"]["tasks"] == 3


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
