"""deploy/slurm.sbatch on a one-node allocation of this machine: the SLURM variables it reads are set,
`scontrol` and `srun` are stand-ins (the node list's one host; run the step's command here), Ray is
real. The job must start a token-auth head with the allocation's CPUs, hand the sweep its spec, options
and --address, and leave no Ray process behind. `taskdisc` is a stand-in that joins the cluster and
reports it: tests/test_autoscaler.py runs real sweeps through --address."""
from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from autoscale_cluster import MARKER, REPO, free_port, stop_cluster

pytestmark = pytest.mark.slow

# Joins the cluster at --address (token auth from the job's environment) and prints what it found.
TASKDISC = f"""#!{sys.executable}
import sys, ray
ray.init(address=sys.argv[sys.argv.index("--address") + 1], log_to_driver=False)
print("stand-in taskdisc", " ".join(sys.argv[1:]), "cpus", ray.cluster_resources().get("CPU"))
"""
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
    (bin_dir / "taskdisc").write_text(TASKDISC)
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


def test_sbatch_script_starts_ray_on_its_allocation_and_runs_the_sweep(one_node_allocation):
    job = subprocess.run(["bash", str(REPO / "deploy" / "slurm.sbatch"), "specs/quickstart.yaml", "--set", "x=1"],
                         cwd=REPO, env=one_node_allocation, capture_output=True, text=True, timeout=300)
    out = job.stdout + job.stderr
    assert job.returncode == 0, out[-3000:]
    assert "1 node(s) of 2 CPUs and 0 GPUs" in out
    port = one_node_allocation["RAY_PORT"]
    assert re.search(rf"stand-in taskdisc sweep specs/quickstart.yaml --address \S+:{port} --set x=1 cpus 2.0", out), out
