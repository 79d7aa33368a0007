"""The MLflow UI in a real browser (Debian's headless Chromium, driven by Playwright) after a small
sweep: the address `taskdisc ui` prints opens on the trials with their agreement, best first, and the
parent run's figures render. `tests/install_browser.sh` installs Chromium; CI runs it first."""
from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.tracking.mlflow_runs import Tracker
from sweep_helpers import REPO, child_runs, tiny_spec
from test_ui import free_port, serving

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium as root in a sandbox-less container, and no calls home on a machine without internet.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FIGURES = ("as_by_task_set.png", "as_by_epoch.png", "as_vs_test_acc.png")


def js_number(x: float) -> str:
    """How the UI's table writes a metric (JavaScript's String(x))."""
    return str(int(x)) if float(x).is_integer() else repr(x)


def png_width(path: Path) -> int:
    return struct.unpack(">I", path.read_bytes()[16:20])[0]


class UiServer:
    """`taskdisc ui` for store `uri` on a free port, started at once (the UI boots while a sweep runs)."""

    def __init__(self, uri: str, cwd: Path):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "ui", "--uri", uri, "--port", str(self.port)], cwd=cwd,
            env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)

    def wait(self) -> tuple[str, list[str]]:
        """Once it answers: (its base address, its first two lines: the server, the one experiment)."""
        lines = [self.proc.stdout.readline(), self.proc.stdout.readline()]
        base, deadline = f"http://127.0.0.1:{self.port}", time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2).close()
                return base, lines
            except OSError:
                assert self.proc.poll() is None, "".join(lines) + self.proc.stdout.read()
                time.sleep(0.5)
        raise AssertionError(f"taskdisc ui did not answer on {base}: {''.join(lines)}")

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_ui_opens_on_the_trials_and_shows_the_figures(tmp_path, tiny_dataset_tar, ray_address):
    if CHROMIUM is None:
        pytest.fail("no chromium on PATH: run `bash tests/install_browser.sh` (Debian's chromium package)")
    spec = tiny_spec(tmp_path, tiny_dataset_tar, name="ui", tasks={"real": [0, 1], "random": [0]},
                     **{"protocol.epochs": 2})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    Tracker(uri, "ui")  # the experiment, as a sweep makes it first: the UI starts while the sweep runs
    server = UiServer(uri, tmp_path)
    try:
        assert main(["sweep", str(spec)]) == 0
        base, lines = server.wait()
        check_pages(tmp_path, uri, base, lines)
        server.proc.terminate()  # SIGTERM to the `taskdisc ui` process alone stops the server
        server.proc.wait(timeout=30)
        deadline = time.time() + 30
        while time.time() < deadline and serving(server.port):
            time.sleep(0.5)
        assert not serving(server.port)
    finally:
        server.kill()


def check_pages(tmp_path: Path, uri: str, base: str, lines: list[str]) -> None:
    from playwright.sync_api import sync_playwright
    started = time.time()
    (parent,), children = child_runs(uri, "ui")
    address = lines[1].split(": ", 1)[1].strip()
    assert lines[1].strip().startswith("ui: ") and address.startswith(base), lines
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1800, "height": 900})
        page.goto(address)
        page.get_by_text(children[0].info.run_name, exact=True).first.wait_for(timeout=60_000)
        page.screenshot(path=tmp_path / "runs.png")
        # A table row is split in parts (pinned name, scrolled columns) that share the run id.
        rows: dict[str, str] = {}
        for part in page.locator('[role="row"][row-id]').all():
            rows[part.get_attribute("row-id")] = rows.get(part.get_attribute("row-id"), "") + "\n" + part.inner_text()
        order = list(rows)
        for run in children:
            cells = rows[run.info.run_id].split("\n")
            assert run.info.run_name in cells and js_number(run.data.metrics["eval/agreement"]) in cells, cells
        shown = [r.data.metrics["eval/agreement"] for r in sorted(children, key=lambda r: order.index(r.info.run_id))]
        assert shown == sorted(shown, reverse=True)  # best first, flat (not folded under the parent)
        assert order[-1] == parent.info.run_id

        client = MlflowClient(tracking_uri=uri)
        page.get_by_role("link", name=parent.info.run_name, exact=True).last.click()  # as a user finds the figures
        page.get_by_role("tab", name="Artifacts").click()
        last_src = None
        for name in FIGURES:
            page.get_by_text(name, exact=True).click()  # in the artifact tree: the figure replaces the last one
            width = png_width(Path(client.download_artifacts(parent.info.run_id, name, str(tmp_path))))
            last_src = page.wait_for_function(
                """([before, width]) => { const img = document.querySelector("img[src^='blob:']");
                   return img && img.src !== before && img.complete && img.naturalWidth === width && img.src; }""",
                arg=[last_src, width], timeout=60_000).json_value()
        page.screenshot(path=tmp_path / "figure.png")
        browser.close()
    print(f"browser check: {time.time() - started:.1f}s")
