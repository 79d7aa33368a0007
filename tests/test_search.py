"""Top-k search: ASHA stops trials of poor tasks early; they are recorded as stopped, so a rerun is exact."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from orchestrator.cli import main
from orchestrator.tracking.record import Record
from sweep_helpers import child_runs, tiny_spec

pytestmark = pytest.mark.slow
EPOCHS = 4


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
