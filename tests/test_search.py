"""Top-k search: ASHA stops trials of poor tasks early; they are recorded as stopped, so a rerun is exact."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from orchestrator.cli import main
from orchestrator.results.asha_replay import grid, replay, rungs
from orchestrator.specs.search import Search
from orchestrator.tracking.record import Record
from sweep_helpers import child_runs, tiny_spec

EPOCHS = 4


@pytest.mark.slow
def test_asha_stops_poor_tasks_and_a_rerun_runs_nothing(tmp_path, tiny_dataset_tar, ray_address, capsys):
    spec = tiny_spec(tmp_path, tiny_dataset_tar, name="topk", tasks={"real": "0-3", "random": "0-3"},
                     search={"top_k": 2, "grace_epochs": 1, "reduction_factor": 2}, **{"protocol.epochs": EPOCHS})
    assert main(["sweep", str(spec)]) == 0
    out = capsys.readouterr().out
    rows = Record(tmp_path / "runs" / "topk").rows()
    stopped = [r for r in rows if r.get("stopped")]
    ran = [r for r in rows if not r.get("stopped")]
    assert len(rows) == 8 and stopped and ran, out
    assert all(r["epochs"] < EPOCHS for r in stopped) and all(r["epochs"] == EPOCHS for r in ran)
    spent = sum(r["epochs"] for r in rows)
    assert f"search: {len(stopped)} of 8 trials stopped early; {spent} epochs spent of {8 * EPOCHS}" in out
    assert "stopped by the search after" in out

    _, children = child_runs(f"sqlite:///{tmp_path / 'mlflow.db'}", "topk")
    assert len(children) == 8 and all(c.info.status == "FINISHED" for c in children)
    assert sum("search/stopped_at_epoch" in c.data.metrics for c in children) == len(stopped)

    assert main(["sweep", str(spec)]) == 0  # the record holds every trial, stopped ones included
    assert "8 already recorded, 0 to run" in capsys.readouterr().out
    table = pq.read_table(tmp_path / "runs" / "topk" / "results.parquet").to_pylist()
    assert sorted(r["key"] for r in table) == sorted(r["key"] for r in ran)  # scores of trials that ran to the end


def test_replay_by_hand():
    """One trial at a time, grace 1, factor 2 (rungs 1, 2; a decision at the last epoch stops nothing):
    trial 0 sets the bar; trial 1 trails it at epoch 1 (0.4 < 0.5); trial 2 passes epoch 1 (0.6 >= median
    0.45) and trails trial 0 at epoch 2 (0.5 < 0.6); trial 3 passes both (0.55 >= 0.5, 0.65 >= 0.55)."""
    curves = [[0.5, 0.6, 0.7, 0.8], [0.4, 0.9, 0.9, 0.9], [0.6, 0.5, 0.9, 0.9], [0.55, 0.65, 0.6, 0.95]]
    assert rungs(1, 2, 4) == [1, 2, 4] and rungs(2, 3, 8) == [2, 6] and rungs(2, 4, 8) == [2, 8]
    r = replay(curves, grace=1, factor=2, concurrency=1)
    assert (r.epochs, r.full, r.finished) == (4 + 1 + 2 + 4, 16, (0, 3))
    (row,) = grid(curves, k=1, graces=[1], factors=[2], concurrency=1)
    assert row["found"] == 1 and row["saving"] == pytest.approx(16 / 11)  # the best (trial 3, 0.95) ran to the end


def test_replay_decides_as_tunes_asha(tmp_path):
    """The replay's stops are those of Tune's own bracket fed the same results in the same order."""
    from types import SimpleNamespace

    from ray.tune.schedulers.async_hyperband import _Bracket
    rng = np.random.default_rng(0)
    curves = rng.uniform(0.5, 0.9, size=(40, 8)).tolist()
    for grace, factor in ((1, 2), (2, 3), (2, 4), (3, 2)):
        bracket, spent = _Bracket(grace, 8, factor, 0), 0
        for i, curve in enumerate(curves):
            trial = SimpleNamespace(trial_id=str(i))
            for epoch, value in enumerate(curve, 1):
                spent += 1
                # Tune's ASHAScheduler stops a trial at max_t without asking the bracket
                if epoch < 8 and bracket.on_result(trial, epoch, value) == "STOP":
                    break
        assert replay(curves, grace, factor, concurrency=1).epochs == spent


def test_default_search_is_the_replayed_one():
    """The defaults are those the replay on the full top-k-real sweep chose (grace 1, factor 2: rungs 1, 2, 4)."""
    s = Search(top_k=5)
    assert (s.grace_epochs, s.reduction_factor) == (1, 2)
    assert s.scheduler_config(8)["grace_period"] == 1 and rungs(1, 2, 8) == [1, 2, 4, 8]
