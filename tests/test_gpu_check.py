"""The GPU check (bench/gpu_check.sh) on the CPU: the device call of docs/gpu.md run with --dry-run
(the device's flags, toy sizes) with the packages the device machine lacks unimportable; the
budget cutting a run that still reports its finished parts; a run killed from outside keeping
them; bad input. GPU slots are short and rare, so the script must not rot between them."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import gpu_check  # noqa: E402
from gpu_parts import LADDER  # noqa: E402

ABSENT_ON_DEVICE = ("ray", "mlflow", "lightly")  # /work/.library/device/KINDS.md: not in its image
# Installed first on sys.path as sitecustomize: every import of those packages fails as it would on
# the device, and is written down, so that an optional import caught by try/except shows too.
BLOCKER = f"""
import os, sys
class AbsentOnDevice:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {ABSENT_ON_DEVICE!r}:
            with open(os.environ["BLOCKED_IMPORTS"], "a") as f:
                f.write(name + "\\n")
            raise ModuleNotFoundError(f"No module named {{name!r}} (not on the GPU machine)")
sys.meta_path.insert(0, AbsentOnDevice())
"""
OUT_NAME = re.compile(r"^[A-Za-z0-9._-]+$")  # what the device tool returns from $OUT


def device_call() -> dict:
    """The device tool call docs/gpu.md gives (its one JSON block)."""
    blocks = re.findall(r"```json\n(.*?)```", (ROOT / "docs" / "gpu.md").read_text(), re.S)
    assert len(blocks) == 1, "docs/gpu.md: expected exactly one json block, the device call"
    return json.loads(blocks[0])


def run(command: str, out: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OUT": str(out), **(env or {})})


def sections(report: str) -> dict[int, str]:
    heads = list(re.finditer(r"^## (\d)\. .*$", report, re.M))
    ends = [h.start() for h in heads[1:]] + [len(report)]
    return {int(h.group(1)): report[h.end():end] for h, end in zip(heads, ends)}


def rows(section: str) -> list[list[str]]:
    """Table rows, header and rule left out."""
    table = [[c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines()
             if line.startswith("|") and not line.startswith("|---")]
    return table[1:]


def num(cell: str) -> float:
    """'1234', '2.5x', '41.0%' -> a float (a percentage as a fraction)."""
    value = float(re.match(r"-?[\d.]+(?:e-?\d+)?", cell).group())
    return value / 100 if cell.endswith("%") else value


def assert_env_part(section: str) -> None:
    table = dict(r[:2] for r in rows(section))
    assert num(table["bf16 matmul 256^3, measured"]) > 0
    assert "50000 train, 10000 test images" in table["CIFAR-10"]


@pytest.fixture
def blocked(tmp_path) -> dict:
    """Environment under which the packages the device lacks cannot be imported."""
    site = tmp_path / "absent-on-device"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    log = tmp_path / "blocked-imports.txt"
    log.write_text("")
    env = {"PYTHONPATH": f"{site}:{ROOT}", "BLOCKED_IMPORTS": str(log)}
    probe = subprocess.run([sys.executable, "-c", "import ray"], capture_output=True, text=True,
                           env={**os.environ, **env})
    assert probe.returncode != 0 and "not on the GPU machine" in probe.stderr, "the blocker is not in effect"
    log.write_text("")
    return env


@pytest.mark.slow
def test_the_device_call_dry_run_reports_every_part(tmp_path, blocked, cifar10):
    call = device_call()
    assert call["carry"] == [".data"]
    budget = float(re.search(r"--budget (\d+)", call["command"]).group(1))
    assert budget + 60 <= call["timeout_s"] <= 600, "the budget must end well inside the device command's limit"
    out = tmp_path / "out"
    done = run(call["command"] + " --dry-run", out, blocked)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert Path(blocked["BLOCKED_IMPORTS"]).read_text() == "", "the check imported what the device lacks"
    report = (out / "gpu_report.md").read_text()
    for word in ("FAILED", "TIMEOUT", "SKIPPED", "STOPPED"):
        assert word not in report, report
    part = sections(report)
    assert sorted(part) == [1, 2, 3, 4, 5]
    for i, name in enumerate(gpu_check.PARTS, 1):
        assert gpu_check.TITLES[name] in report and (out / f"part{i}-{name}.log").exists()
    files = list(out.iterdir())
    assert len(files) <= 8 and all(f.is_file() and OUT_NAME.match(f.name) for f in files)

    assert_env_part(part[1])

    # 2: the reference and every rung of the engine's ladder, per arch, with their peak fraction.
    seen = {}
    for arch, loop, precision, channels_last, compile_mode, ips, vs, tflops, of_peak, _, _ in rows(part[2]):
        seen[(arch, loop.split(" ")[0], precision, channels_last, compile_mode.split(" ")[0])] = ips
        assert num(ips) > 0 and num(vs) > 0 and 0 < num(of_peak) < 10 and num(tflops) > 0
        assert num(of_peak) == pytest.approx(num(tflops) / num(re.search(r"in this run: ([\d.e-]+)", part[2])[1]),
                                             rel=0.05, abs=0.001)
    ladder = {(p, str(c), m) for p, c, m in LADDER}
    for arch in ("resnet18", "mlp"):
        assert (arch, "reference", "fp32", "False", "off") in seen
        assert {k[2:] for k in seen if k[:2] == (arch, "engine")} == ladder
    assert re.search(r"- resnet18 pair at [\d.]+% of the bf16 peak measured in this run .*goal >= 40%: "
                     r"\*\*(met|not met)\*\*", part[2])
    assert re.search(r"- resnet18: [\d.]+x the reference loop per AS evaluation .*goal >= 5x: \*\*", part[2])
    assert re.search(r"- mlp: [\d.]+x the reference loop per AS evaluation .*goal >= 20x: \*\*", part[2])

    # 3: AS per task, precision and seed; the summary's difference is the rows' own.
    as_rows = rows(part[3])
    assert len(as_rows) == 8 and all(0 <= num(r[3]) <= 1 for r in as_rows)
    for kind in ("real", "random"):
        mean = {p: sum(num(r[3]) for r in as_rows if r[:2] == [f"{kind}-0", p]) / 2 for p in ("fp32", "bf16")}
        diff = float(re.search(rf"- {kind} task 0: .*bf16 - fp32 = ([-+][\d.]+)", part[3]).group(1))
        assert diff == pytest.approx(mean["bf16"] - mean["fp32"], abs=2e-4)
    assert part[3].count("seed noise") == 2

    # 4: every process count per arch, each with a total rate, and a resources.gpus per arch.
    assert {(r[0], r[1]) for r in rows(part[4])} == {(a, n) for a in ("resnet18", "mlp") for n in "12"}
    assert all(num(r[2]) > 0 and num(r[3]) > 0 for r in rows(part[4]))
    assert part[4].count("`resources.gpus: ") == 2

    # 5: checkpointing on and off, each with a time and a memory.
    assert {r[0] for r in rows(part[5])} == {"on", "off"}
    assert all(num(r[1]) > 0 and num(r[3]) >= 0 for r in rows(part[5]))

    total = float(re.search(r"^Total: ([\d.]+) s of the (\d+) s budget$", report, re.M).group(1))
    assert total < budget


def test_the_budget_stops_the_run_and_the_report_keeps_what_finished(tmp_path, cifar10):
    # env finishes and as fails (their --limit: not starved by a slow torch import on a busy
    # machine); concurrency hangs and, with a --limit beyond the budget, is killed when the budget
    # runs out; discovery then finds it spent.
    out, budget = tmp_path / "out", 25
    began = time.monotonic()
    done = run(f"bash bench/gpu_check.sh --budget {budget} --dry-run --parts env,as,concurrency,discovery "
               f"--limit env={budget} --limit as={budget} --inject as=error --inject concurrency=hang "
               "--limit concurrency=100", out)
    wall = time.monotonic() - began
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = (out / "gpu_report.md").read_text()
    part = sections(report)
    assert sorted(part) == [1, 3, 4, 5], report
    assert_env_part(part[1])
    assert "**FAILED**: RuntimeError: injected failure" in part[3]
    assert "**TIMEOUT**" in part[4]
    assert "**SKIPPED**: the budget is spent" in part[5]
    total = float(re.search(rf"^Total: ([\d.]+) s of the {budget} s budget$", report, re.M).group(1))
    assert budget - gpu_check.MARGIN_S - 1 < total <= budget
    assert wall < budget + 10


def test_a_part_gets_its_share_and_what_earlier_parts_left_never_what_later_parts_are_due():
    assert gpu_check.part_limit(remaining=100, later_shares=60, override=None) == 40
    assert gpu_check.part_limit(remaining=50, later_shares=60, override=None) < gpu_check.MIN_PART_S
    assert gpu_check.part_limit(remaining=100, later_shares=60, override=70) == 70
    assert gpu_check.part_limit(remaining=100, later_shares=60, override=500) == 100


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_run_killed_from_outside_keeps_the_finished_parts_and_ends_its_children(tmp_path, cifar10):
    # The device tool kills a command at its limit: what reached $OUT is all that comes back.
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen(["bash", "bench/gpu_check.sh", "--dry-run", "--parts", "env,discovery",
                             "--inject", "discovery=hang"], cwd=ROOT, env={**os.environ, "OUT": str(out)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    log, hung = out / "part5-discovery.log", None
    try:
        deadline = time.monotonic() + 120
        while hung is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"injected hang \(--inject\): pid (\d+)", log.read_text() if log.exists() else "")
            hung = int(found.group(1)) if found else None
            time.sleep(0.2)
        assert hung is not None, "the hanging part never started"
        os.killpg(proc.pid, signal.SIGKILL)  # the shell and the check; the part leads its own group
        proc.wait()
        gone = time.monotonic() + 10
        while alive(hung) and time.monotonic() < gone:
            time.sleep(0.1)
        assert not alive(hung), "the running part outlived the killed check"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if hung is not None and alive(hung):
            os.kill(hung, signal.SIGKILL)
    report = (out / "gpu_report.md").read_text()
    part = sections(report)
    assert sorted(part) == [1, 5]
    assert_env_part(part[1])
    assert "_part 1: " in part[1] and "Total:" not in report


def test_without_the_data_the_check_stops_at_once_naming_the_copy(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TASKDISC_CIFAR10", str(tmp_path / "none.tar.gz"))
    monkeypatch.setenv("OUT", str(tmp_path / "out"))
    with pytest.raises(SystemExit) as e:
        gpu_check.main(["--budget", "480", "--dry-run"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and gpu_check.COPY_STEP in err, err
    assert not (tmp_path / "out").exists(), "bad input must leave nothing written"


@pytest.mark.skipif(__import__("torch").cuda.device_count() > 0, reason="this machine has a GPU")
def test_without_a_gpu_the_device_command_stops_at_once_pointing_at_the_dry_run(tmp_path, cifar10):
    done = run(device_call()["command"], tmp_path / "out", timeout=120)
    assert done.returncode == 2 and "CUDA device(s)" in done.stderr and "--dry-run" in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and not (tmp_path / "out").exists()


def test_the_checkouts_copy_is_found_and_an_explicit_path_wins(tmp_path):
    with pytest.raises(gpu_check.BadInput, match=re.escape(gpu_check.COPY_STEP)):
        gpu_check.find_cifar10(tmp_path, {})
    copy = tmp_path / gpu_check.CIFAR10_COPY
    copy.parent.mkdir()
    copy.write_bytes(b"")
    assert gpu_check.find_cifar10(tmp_path, {}) == copy.resolve()
    elsewhere = tmp_path / "elsewhere.tar.gz"
    elsewhere.write_bytes(b"")
    assert gpu_check.find_cifar10(tmp_path, {"TASKDISC_CIFAR10": str(elsewhere)}) == elsewhere
    with pytest.raises(gpu_check.BadInput, match="TASKDISC_CIFAR10="):
        gpu_check.find_cifar10(tmp_path, {"TASKDISC_CIFAR10": str(tmp_path / "missing.tar.gz")})


@pytest.mark.parametrize("argv, message", [
    (["--budget", "3"], "--budget 3: too short"),
    (["--budget", "soon"], "invalid float value"),
    (["--parts", "env,gpu"], "unknown gpu"),
    (["--limit", "env"], "expected PART=VALUE"),
    (["--inject", "env=crash"], "expected error or hang"),
    (["--bogus"], "unrecognized arguments"),
    (["--device", "gpu0"], "--device gpu0: "),
])
def test_bad_flags_are_one_line_and_exit_2(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("OUT", str(tmp_path / "out"))
    with pytest.raises(SystemExit) as e:
        gpu_check.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
