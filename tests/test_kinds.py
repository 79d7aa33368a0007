"""The sweep-kind registry: every registered kind declares what the flow needs, validates, lists its fields,
runs a tiny sweep through the CLI and summarises it; a kind registered from outside (the README's worked
example) runs end to end the same way."""
from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys

import pytest
import yaml
from sweep_helpers import REPO, child_runs

from orchestrator.cli import main
from orchestrator.kinds import (
    KIND_KEY,
    PACKAGES,
    kind_of,
    kinds,
    load_spec,
    register,
    spec_data,
    unregister,
)
from orchestrator.tracking.record import Record

KINDS = list(PACKAGES)


def example_spec(tmp_path, kind: str, root) -> tuple:
    """The kind's example written as a spec file (own MLflow store and runs/), and its sweep folder."""
    spec = {KIND_KEY: kind, **kinds()[kind].example(str(root)),
            "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}, "output_dir": str(tmp_path / "runs")}
    path = tmp_path / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, tmp_path / "runs" / spec["name"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_declares_what_the_flow_needs(kind, tmp_path, tiny_dataset_tar, capsys):
    declared = kinds()[kind]
    assert declared.name == kind and declared.doc and declared.sections
    for title, cls in declared.sections.items():
        assert all(f.metadata.get("doc") for f in dataclasses.fields(cls)), f"{title}: a field without a doc"
        assert main(["fields", title]) == 0 and capsys.readouterr().out.startswith(f"{title}:")
    path, _ = example_spec(tmp_path, kind, tiny_dataset_tar)
    spec = load_spec(path)
    assert kind_of(spec) is declared and spec.trial_count() == len(spec.trials()) > 0
    for t in spec.iter_trials():  # a trial's config (what Tune ships) is the trial again
        assert declared.trial.from_config(t.to_config()) == t
    saved = tmp_path / "saved.yaml"  # the resolved spec saved with the results loads as the same sweep
    saved.write_text(yaml.safe_dump(spec_data(spec), sort_keys=False))
    assert [t.key for t in load_spec(saved).iter_trials()] == [t.key for t in spec.iter_trials()]


@pytest.mark.parametrize("kind", KINDS)
def test_a_tiny_sweep_of_every_kind_then_its_results(kind, tmp_path, tiny_dataset_tar, ray_address, capsys):
    path, sweep_dir = example_spec(tmp_path, kind, tiny_dataset_tar)
    assert main(["validate", str(path)]) == 0
    assert f"(kind {kind})" in capsys.readouterr().out
    assert main(["sweep", str(path), "--address", ray_address]) == 0
    spec = load_spec(path)
    rows = Record(sweep_dir).rows()
    assert sorted(r["key"] for r in rows) == sorted(t.key for t in spec.iter_trials())
    parents, children = child_runs(spec.tracking.uri, spec.experiment)
    assert len(parents) == 1 and len(children) == len(rows)  # one MLflow run per trial under the sweep's run
    capsys.readouterr()
    assert main(["results", str(sweep_dir)]) == 0
    shown = capsys.readouterr().out
    assert shown.strip() and "no finished trials" not in shown, shown


def test_a_missing_or_unknown_kind_is_one_line_naming_every_kind(tmp_path, capsys):
    spec = yaml.safe_load((REPO / "specs" / "quickstart.yaml").read_text())
    for value, message in ((None, "missing key kind"), ("agreements", "kind='agreements' is unknown")):
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump({k: v for k, v in {**spec, KIND_KEY: value}.items() if v is not None}))
        assert main(["validate", str(path)]) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert message in line and all(k in line for k in KINDS), line


def readme_kind(tmp_path):
    """The README's worked example of a new kind ("How it grows"), imported as the module it tells you to write."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"```python\n# orchestrator/kinds/balance/__init__\.py\n(.*?)```", text, re.S)
    assert block, "the README's 'How it grows' example is missing"
    (tmp_path / "balance_kind.py").write_text(block.group(1))
    spec = importlib.util.spec_from_file_location("balance_kind", tmp_path / "balance_kind.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["balance_kind"] = module
    spec.loader.exec_module(module)
    # Ray's workers import a kind's adapter by module name; this module lives in a test folder only.
    import ray.cloudpickle
    ray.cloudpickle.register_pickle_by_value(module)
    return module


def test_the_readmes_new_kind_registers_and_runs_end_to_end(tmp_path, tiny_dataset_tar, ray_address, capsys):
    module = readme_kind(tmp_path)
    register(module.KIND)
    try:
        path, sweep_dir = example_spec(tmp_path, "balance", tiny_dataset_tar)
        assert main(["validate", str(path)]) == 0 and "2 trials" in capsys.readouterr().out
        assert main(["fields", KIND_KEY]) == 0 and "balance:" in capsys.readouterr().out
        assert main(["sweep", str(path), "--address", ray_address]) == 0
        rows = {r["key"]: r["balance"] for r in Record(sweep_dir).rows()}
        assert set(rows) == {"real-0", "real-1"} and all(0.3 < b < 0.7 for b in rows.values())  # 5 of 10 classes
        assert main(["sweep", str(path), "--address", ray_address]) == 0  # a rerun finds both recorded
        assert "2 already recorded, 0 to run" in capsys.readouterr().out
        assert main(["results", str(sweep_dir)]) == 0 and "example-balance__real-0" in capsys.readouterr().out
    finally:
        unregister("balance")
        sys.modules.pop("balance_kind", None)
