"""deploy/slurm.sbatch on a one-node allocation of this machine: the SLURM variables it reads are set,
`scontrol` and `srun` are stand-ins (the node list's one host; run the step's command here), and
Ray and the sweep are real. The job must start a token-auth head, run the sweep through --address,
and leave no Ray process behind."""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from autoscale_cluster import MARKER, REPO, free_port, stop_cluster
from orchestrator.tracking.record import Record
from sweep_helpers import tiny_spec

pytestmark = pytest.mark.slow

SRUN = """#!/usr/bin/env bash
# srun on a one-node allocation: drop srun's options, run the step's command here.
while (( $# )); do
    case "$1" in
        -w|--nodelist|-N|--nodes|-n|--ntasks|--exclude) shift 2 ;;
        -*) shift ;;
        *) break ;;
    esac
done
exec "$@"
"""


@pytest.fixture
def one_node_allocation(monkeypatch):
    """PATH with scontrol and srun stand-ins, and the SLURM variables of a one-node job."""
    temp_dir = Path(tempfile.mkdtemp(prefix="tdsl-", dir="/tmp"))  # short: the job's Ray sockets live under it
    bin_dir = temp_dir / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(SRUN)
    (bin_dir / "scontrol").write_text(f"#!/usr/bin/env bash\necho {socket.gethostname()}\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(REPO), "TMPDIR": str(temp_dir),
           "SLURM_JOB_ID": secrets.token_hex(4), "SLURM_JOB_NODELIST": socket.gethostname(),
           "SLURM_JOB_NUM_NODES": "1", "SLURM_CPUS_PER_TASK": "2",
           "RAY_PORT": str(free_port()), "RAY_DASHBOARD_PORT": str(free_port()), MARKER: str(temp_dir)}
    for name in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "SLURM_GPUS_ON_NODE"):
        monkeypatch.delenv(name, raising=False)
    try:
        yield {**os.environ, **env}
    finally:
        left = stop_cluster(temp_dir)  # only if the job's own cleanup failed
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert left == 0, f"{left} processes of the job's Ray outlived it"


def test_sbatch_script_runs_a_sweep_on_its_allocation(tmp_path, one_node_allocation, tiny_dataset_tar):
    spec = tiny_spec(tmp_path, tiny_dataset_tar, name="slurm", tasks={"real": [0], "random": [0]},
                     protocol={"arch": "mlp", "width": 0.125, "epochs": 2, "batch_size": 64, "holdout": 60,
                               "compile": "off"})
    job = subprocess.run(["bash", str(REPO / "deploy" / "slurm.sbatch"), str(spec), "--set", "concurrency=2"],
                         cwd=REPO, env=one_node_allocation, capture_output=True, text=True, timeout=300)
    out = job.stdout + job.stderr
    assert job.returncode == 0, out[-3000:]
    assert "1 node(s) of 2 CPUs and 0 GPUs" in out
    assert "slurm: 2 trials, 0 already recorded, 2 to run" in out
    assert len(Record(tmp_path / "runs" / "slurm").rows()) == 2
