"""A Ray cluster on this machine run by Ray's own autoscaler (its fake multi-node provider), with the
node types of `cluster.yaml`: the head is a real `ray start --head`, and the autoscaler starts and
stops worker nodes (real raylets on this machine) as trials ask for resources.

Its processes all carry one environment variable naming the cluster, so stopping it ends exactly
those: `ray stop` would end every Ray process on the machine, other people's local clusters too.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
MARKER = "TASKDISC_TEST_CLUSTER"
FAKE_HEAD_TYPE = "ray.head.default"  # the provider tags its head with this type name, whatever the config says


def reset_auth_state() -> None:
    """Make this process re-read RAY_AUTH_MODE and the token (Ray caches both)."""
    from ray._raylet import AuthenticationTokenLoader, Config
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def derived_config(cluster_yaml: Path, gcs_address: str, idle_timeout_minutes: float,
                   worker_resources: dict) -> dict:
    """`cluster_yaml`'s worker node types (names, min/max workers), cluster limits and head resources,
    on the fake provider: every worker type gets `worker_resources` (fake GPUs, few CPUs) and the idle
    timeout is shortened so scale-down fits in a test."""
    c = yaml.safe_load(cluster_yaml.read_text())
    types = {FAKE_HEAD_TYPE: {"resources": c["available_node_types"][c["head_node_type"]]["resources"],
                              "node_config": {}, "max_workers": 0}}
    for name, t in c["available_node_types"].items():
        if name != c["head_node_type"]:
            types[name] = {"min_workers": t.get("min_workers", 0), "max_workers": t["max_workers"],
                           "resources": dict(worker_resources), "node_config": {}}
    empty = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
             "head_start_ray_commands", "worker_start_ray_commands", "rsync_exclude", "rsync_filter",
             "cluster_synced_files")
    return {
        "cluster_name": c["cluster_name"], "max_workers": c["max_workers"],
        "upscaling_speed": c["upscaling_speed"], "idle_timeout_minutes": idle_timeout_minutes,
        # What Ray's own fake-cluster example sets: node ids stand in for IPs, no SSH updaters.
        "provider": {"type": "fake_multinode", "gcs_address": gcs_address, "use_node_id_as_ip": True,
                     "disable_node_updaters": True, "disable_launch_config_check": True},
        "auth": {}, "available_node_types": types, "head_node_type": FAKE_HEAD_TYPE,
        "file_mounts": {}, "file_mounts_sync_continuously": False, **{k: [] for k in empty},
    }


def start_head(config: dict, temp_dir: Path, port: int, env: dict) -> str:
    """`RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config=...` (what `ray up` cannot do for this
    provider); returns the GCS address. The head's CPUs and GPUs come from its node type."""
    config_file = temp_dir / "autoscaling.json"
    config_file.write_text(json.dumps(config))
    head = config["available_node_types"][FAKE_HEAD_TYPE]["resources"]
    cmd = ["ray", "start", "--head", f"--port={port}", f"--temp-dir={temp_dir}",
           f"--num-cpus={head.get('CPU', 0)}", f"--num-gpus={head.get('GPU', 0)}",
           f"--autoscaling-config={config_file}", "--include-dashboard=false",
           f"--dashboard-port={free_port()}", "--disable-usage-stats"]
    env = {**os.environ, **env, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1",
           MARKER: str(temp_dir), "PYTHONPATH": str(REPO)}
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=120)
    return config["provider"]["gcs_address"]


def stop_cluster(temp_dir: Path, timeout: float = 20) -> int:
    """SIGKILL every process of the cluster (whose environment names `temp_dir`); returns how many."""
    needle = f"{MARKER}={temp_dir}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:  # gone, or not ours to read
            continue
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.time() + timeout
    while time.time() < deadline and any(_running(pid) for pid in pids):
        time.sleep(0.2)
    return len(pids)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
