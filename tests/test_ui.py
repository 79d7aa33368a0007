"""`taskdisc ui` without a store; serving a sweep's store on loopback is tests/test_ui_browser.py."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

from sweep_helpers import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serving(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_ui_without_a_store_exits_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "orchestrator", "ui"], cwd=tmp_path, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert out.returncode == 2 and "no MLflow store" in out.stderr
