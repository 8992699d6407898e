"""What a user sees, in a real browser: JupyterLab runs the crash-lab tutorial in Chromium.

Starts JupyterLab on loopback (no token, throwaway config, data, runtime and settings
folders) over a copy of `notebooks/05_crash_lab.ipynb`, drives Debian's Chromium
(`/usr/bin/chromium`, never a downloaded browser) through Playwright, runs every cell,
presses Crash and Recover, and checks that the widgets rendered, the epoch counters
advanced and the exactly-once verdict reads 0 duplicated / 0 lost. A screenshot lands
in `tests/artifacts/`. Under CI=true a missing browser or Playwright fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "05_crash_lab.ipynb"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SETTINGS = {  # no news or update checks, every cell kept in the DOM
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is missing; `make test` installs it")
    pytest.skip(f"{what} is missing (make test installs it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "api/status", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"JupyterLab did not start: {log.read_text()[-2000:]}")


@pytest.fixture
def lab_url(tmp_path: Path) -> Iterator[str]:
    """A JupyterLab server on loopback over a copy of the tutorial; its URL."""
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        _missing("JupyterLab (pip install -e '.[notebook]')")
    work = tmp_path / "notebooks"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    settings = tmp_path / "settings"
    for name, values in SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTER_DATA_DIR": str(tmp_path / "data"), "JUPYTER_PLATFORM_DIRS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                      os.environ.get("PYTHONPATH")]))}
    port = _free_port()
    log = tmp_path / "lab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           "--IdentityProvider.token=", "--ServerApp.password=",
           f"--ServerApp.root_dir={work}", f"--LabApp.user_settings_dir={settings}",
           f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
           "--LabApp.expose_app_in_browser=True",
           "--LabApp.news_url=", "--ServerApp.allow_remote_access=False"]
    if os.geteuid() == 0:  # CI runs as root
        cmd.append("--allow-root")
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_up(url, proc, log)
        yield url
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and the kernels it started (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _int(text: str) -> int:
    return int(text.strip())


def test_crash_lab_tutorial_in_chromium(lab_url: str) -> None:
    if not Path(CHROMIUM).exists():
        _missing(f"Chromium ({CHROMIUM}, Debian package 'chromium')")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _missing("Playwright (pip install -e '.[test]')")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(f"{lab_url}lab/tree/{NOTEBOOK.name}")
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            _run_all(page)
            lab = page.locator(".rw-crash-lab").first
            expect(lab).to_be_visible()
            plan = page.locator(".rw-plan")
            expect(plan).to_have_count(1, timeout=60_000)
            monitor = page.locator(".rw-monitor .rw-committed-epoch")
            expect(monitor).to_have_count(1)
            assert page.get_by_text("Loading widget").count() == 0
            assert page.get_by_text("Error displaying widget").count() == 0

            first = _int(monitor.text_content() or "")
            lab.locator("button", has_text="Crash").click()
            expect(lab.locator(".rw-epoch-before")).to_be_visible()
            expect(lab.locator(".rw-phase")).to_contain_text("crashed at")
            before = _int(lab.locator(".rw-epoch-before").text_content() or "")
            lab.locator("button", has_text="Recover").click()
            verdict = lab.locator(".rw-verdict-line")
            expect(verdict).to_contain_text("0 duplicated / 0 lost")
            assert "exactly_once" in verdict.inner_text()
            after = _int(lab.locator(".rw-epoch-after").text_content() or "")
            assert after > before > 0
            expect(monitor).not_to_have_text(str(first), timeout=10_000)
            assert _int(monitor.text_content() or "") > first  # the kernel's engine keeps going

            lab.scroll_into_view_if_needed()
            lab.screenshot(path=str(ARTIFACTS / "crash_lab.png"))
        finally:
            browser.close()


def _run_all(page: Any) -> None:
    """Run every cell through JupyterLab's own command, then wait for the kernel to idle."""
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " return w && w.sessionContext && w.sessionContext.session"
        " && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.status === 'idle'; }")
    page.evaluate(
        "() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(
        "() => { const cells = [...document.querySelectorAll('.jp-CodeCell')];"
        " return cells.length > 0 && cells.every(c => {"
        "   const p = c.querySelector('.jp-InputPrompt');"
        "   return p && /\\[\\d+\\]/.test(p.textContent); }); }",
        timeout=90_000)
