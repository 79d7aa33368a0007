"""The GPU check's dry run (bench/gpu_check.sh --dry-run): every part reports numbers on the CPU,
and a part that fails or hangs is recorded while the others still run. GPU slots are short and
rare, so the script must not rot between them."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TITLES = {1: "GPU, driver", 2: "Pair throughput", 3: "Pairs per GPU", 4: "Discovery meta-step", 5: "Agreement score"}
NUMBER = re.compile(r"^-?\d")  # a cell that starts with a number (units may follow)


def dry_run(out: Path, *args: str, env: dict | None = None) -> tuple[str, dict[int, str]]:
    """Run the dry run into `out`; return the report and its sections by part number."""
    done = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OUT": str(out), **(env or {})})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = (out / "gpu_report.md").read_text()
    sections = {int(m.group(1)): body for m, body in
                zip(re.finditer(r"^## (\d)\. .*$", report, re.M), re.split(r"^## \d\. .*$", report, flags=re.M)[1:])}
    return report, sections


def numeric_rows(section: str) -> list[list[str]]:
    """Table rows (not header or rule) with at least one numeric cell."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines()
            if line.startswith("|") and not line.startswith("|---")]
    return [r for r in rows[1:] if any(NUMBER.match(c) for c in r)]


@pytest.mark.slow
def test_dry_run_reports_every_part(tmp_path):
    report, sections = dry_run(tmp_path)
    assert "FAILED" not in report and "TIMEOUT" not in report, report
    assert sorted(sections) == [1, 2, 3, 4, 5]
    for part, title in TITLES.items():
        assert title in report
        assert numeric_rows(sections[part]), f"part {part} has no numbers:\n{sections[part]}"
        assert (tmp_path / f"part{part}-{['env', 'throughput', 'concurrency', 'discovery', 'as'][part - 1]}.log"
                ).exists()
    loops = {(r[0], r[1].split(" ")[0]) for r in numeric_rows(sections[2])}
    assert {("resnet18", "reference"), ("resnet18", "engine"), ("mlp", "reference"), ("mlp", "engine")} <= loops
    assert {(r[0], r[1]) for r in numeric_rows(sections[3])} == {(a, n) for a in ("resnet18", "mlp") for n in "12"}
    assert "resources.gpus" in sections[3]
    assert {r[0] for r in numeric_rows(sections[4])} == {"on", "off"}
    as_rows = numeric_rows(sections[5])
    assert len(as_rows) == 8 and all(0 <= float(r[3]) <= 1 for r in as_rows)
    assert "seed noise" in sections[5]


def test_failed_and_hung_parts_are_recorded_and_the_rest_runs(tmp_path):
    # A CIFAR-10 path that does not exist: the parts fall back to random images.
    _, sections = dry_run(tmp_path, "--parts", "env,concurrency,discovery,as", "--inject", "env=error",
                          "--inject", "discovery=hang", "--limit", "discovery=3",
                          env={"TASKDISC_CIFAR10": str(tmp_path / "no-cifar10")})
    assert sorted(sections) == [1, 3, 4, 5]
    assert "**FAILED**: RuntimeError: injected failure" in sections[1]
    assert "**TIMEOUT**" in sections[4] and "limit of 3 s" in sections[4]
    for part in (3, 5):
        assert "FAILED" not in sections[part] and "TIMEOUT" not in sections[part]
        assert numeric_rows(sections[part])
    assert "random images" in sections[5]
