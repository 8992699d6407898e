"""What a user sees, in a real browser: the crash lab in JupyterLab, Notebook 7 and Voila.

Each test starts one Jupyter front end on loopback (no token, throwaway config, data,
runtime and settings folders, a free port, stopped with its kernels at the end), drives
Debian's Chromium (`/usr/bin/chromium`, never a downloaded browser) through Playwright and
checks that the widgets rendered, the epoch counters advanced and the exactly-once verdict
of the crash lab reads 0 duplicated / 0 lost after pressing Crash and Recover:

- JupyterLab runs every cell of the tutorial `notebooks/05_crash_lab.ipynb`;
- Notebook 7 (`jupyter notebook`) opens a small notebook with the crash lab, the monitor and
  the plan view at `/notebooks/<name>.ipynb` and runs it from its Run menu;
- Voila renders (executes) that small notebook at `/voila/render/<name>.ipynb`.

Screenshots land in `tests/artifacts/`. Under CI=true a missing browser, Playwright or front
end fails the test instead of skipping it.
"""

from __future__ import annotations

import importlib
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
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "05_crash_lab.ipynb"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SETTINGS = {  # no news or update checks, every cell kept in the DOM (JupyterLab, Notebook 7)
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
WAIT = 60_000  # ms: generous for a loaded CI machine, still bounded (expect's default is 5 s)
SMALL = "crash_lab_small.ipynb"  # the crash lab, the monitor and the plan view, nothing else


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is missing; `make test` installs it")
    pytest.skip(f"{what} is missing (make test installs it)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    """Wait until `url` answers 200 (a page that starts no kernel)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")


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


def _small_notebook(path: Path, checkpoints: Path) -> None:
    """The crash lab, then the kernel's engine running the article's pipeline with its
    monitor and plan: what the tutorial shows, in three cells that run in a few seconds."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    setup = ("import rwmagic\n"
             "from IPython.display import display\n"
             "from kernel_engine.article import statements\n\n"
             f"db = rwmagic.engine({str(checkpoints)!r})  # the kernel's engine\n"
             'db.execute(statements(1)[0] + ";" + statements(2)[0])\n'
             'db.execute(statements(1)[1] + "; FLUSH")')
    cells = [new_code_cell(setup),
             new_code_cell('rwmagic.crash_lab(guarantee="exactly_once", at="after_snapshot")'),
             new_code_cell('display(rwmagic.monitor(), rwmagic.show_plan("cons_user_spend"))')]
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    nbformat.write(nb, str(path))


@contextmanager
def _serve(tmp_path: Path, frontend: str) -> Iterator[str]:
    """Start `frontend` (jupyterlab, notebook or voila) on loopback over `tmp_path/notebooks`;
    its base URL. Stopped, with its kernels, on exit."""
    package = {"jupyterlab": "jupyterlab", "notebook": "notebook", "voila": "voila"}[frontend]
    try:
        importlib.import_module(package)
    except ImportError:
        _missing(f"{package} (pip install -e '.[notebook,test]')")
    work = tmp_path / "notebooks"
    work.mkdir(exist_ok=True)
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
    url = f"http://127.0.0.1:{port}/"
    if frontend == "voila":  # serves the folder: /voila/render/<name>.ipynb runs a notebook
        cmd = [sys.executable, "-m", "voila", "--no-browser", "--Voila.ip=127.0.0.1",
               f"--Voila.port={port}", "--Voila.port_retries=0", "--Voila.token=",
               f"--Voila.root_dir={work}", "--VoilaConfiguration.show_tracebacks=True"]
        ready = url + "voila/api/contents/"
    else:
        app = "LabApp" if frontend == "jupyterlab" else "JupyterNotebookApp"
        cmd = [sys.executable, "-m", package, "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               "--IdentityProvider.token=", "--ServerApp.password=",
               f"--ServerApp.root_dir={work}", f"--{app}.user_settings_dir={settings}",
               f"--{app}.workspaces_dir={tmp_path / 'workspaces'}",
               f"--{app}.expose_app_in_browser=True",
               "--ServerApp.allow_remote_access=False"]
        if frontend == "jupyterlab":
            cmd.append("--LabApp.news_url=")
        if os.geteuid() == 0:  # CI runs as root
            cmd.append("--allow-root")
        ready = url + "api/status"
    log = tmp_path / f"{frontend}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _wait_up(ready, proc, log)
        yield url
    finally:
        _stop(proc)


@pytest.fixture
def page() -> Iterator[Any]:
    """A page in headless Debian Chromium, driven by Playwright."""
    if not Path(CHROMIUM).exists():
        _missing(f"Chromium ({CHROMIUM}, Debian package 'chromium')")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright (pip install -e '.[test]')")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.set_default_timeout(60_000)
            yield tab
        finally:
            browser.close()


@pytest.fixture
def lab_url(tmp_path: Path) -> Iterator[str]:
    """A JupyterLab server on loopback over a copy of the tutorial; its URL."""
    (tmp_path / "notebooks").mkdir()
    shutil.copy(NOTEBOOK, tmp_path / "notebooks" / NOTEBOOK.name)
    with _serve(tmp_path, "jupyterlab") as url:
        yield url


def _int(text: str) -> int:
    return int(text.strip())


def test_crash_lab_tutorial_in_chromium(page: Any, lab_url: str) -> None:
    page.goto(f"{lab_url}lab/tree/{NOTEBOOK.name}")
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    _wait_idle(page)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    _wait_all_ran(page)
    _crash_and_recover(page, "crash_lab.png")


def test_crash_lab_in_notebook7(page: Any, tmp_path: Path) -> None:
    """Notebook 7's own UI at /notebooks/<name>.ipynb, every cell run from its Run menu."""
    (tmp_path / "notebooks").mkdir()
    _small_notebook(tmp_path / "notebooks" / SMALL, tmp_path / "checkpoints")
    with _serve(tmp_path, "notebook") as url:
        page.goto(f"{url}notebooks/{SMALL}")
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        _wait_idle(page)
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
        _wait_all_ran(page)
        _crash_and_recover(page, "crash_lab_notebook7.png")


def test_crash_lab_in_voila(page: Any, tmp_path: Path) -> None:
    """Voila executes the notebook, renders its outputs alone, and the widgets stay live."""
    (tmp_path / "notebooks").mkdir()
    _small_notebook(tmp_path / "notebooks" / SMALL, tmp_path / "checkpoints")
    with _serve(tmp_path, "voila") as url:
        page.goto(f"{url}voila/render/{SMALL}", timeout=90_000)
        _crash_and_recover(page, "crash_lab_voila.png")


def _wait_idle(page: Any) -> None:
    """Wait for the notebook's kernel to be idle (JupyterLab and Notebook 7 expose the app)."""
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " return w && w.sessionContext && w.sessionContext.session"
        " && w.sessionContext.session.kernel"
        " && w.sessionContext.session.kernel.status === 'idle'; }")


def _wait_all_ran(page: Any) -> None:
    """Wait until every code cell shows an execution count."""
    page.wait_for_function(
        "() => { const cells = [...document.querySelectorAll('.jp-CodeCell')];"
        " return cells.length > 0 && cells.every(c => {"
        "   const p = c.querySelector('.jp-InputPrompt');"
        "   return p && /\\[\\d+\\]/.test(p.textContent); }); }",
        timeout=90_000)


def _crash_and_recover(page: Any, screenshot: str) -> None:
    """The widgets rendered; Crash then Recover gives the exactly-once verdict, the epoch
    counters advance; a screenshot of the crash lab."""
    from playwright.sync_api import expect

    lab = page.locator(".rw-crash-lab").first
    expect(lab).to_be_visible(timeout=90_000)
    plan = page.locator(".rw-plan")
    expect(plan).to_have_count(1, timeout=WAIT)
    monitor = page.locator(".rw-monitor .rw-committed-epoch")
    expect(monitor).to_have_count(1, timeout=WAIT)
    assert page.get_by_text("Loading widget").count() == 0
    assert page.get_by_text("Error displaying widget").count() == 0

    first = _int(monitor.text_content() or "")
    lab.locator("button", has_text="Crash").click()
    expect(lab.locator(".rw-epoch-before")).to_be_visible(timeout=WAIT)
    expect(lab.locator(".rw-phase")).to_contain_text("crashed at", timeout=WAIT)
    before = _int(lab.locator(".rw-epoch-before").text_content() or "")
    lab.locator("button", has_text="Recover").click()
    verdict = lab.locator(".rw-verdict-line")
    expect(verdict).to_contain_text("0 duplicated / 0 lost", timeout=WAIT)
    assert "exactly_once" in verdict.inner_text()
    after = _int(lab.locator(".rw-epoch-after").text_content() or "")
    assert after > before > 0
    expect(monitor).not_to_have_text(str(first), timeout=30_000)
    assert _int(monitor.text_content() or "") > first  # the kernel's engine keeps going
    assert page.get_by_text("Loading widget").count() == 0
    assert page.get_by_text("Error displaying widget").count() == 0

    page.set_viewport_size({"width": 1400, "height": 2000})  # the whole lab, verdict included
    page.wait_for_timeout(500)  # the front end lays itself out again
    lab.scroll_into_view_if_needed()
    lab.screenshot(path=str(ARTIFACTS / screenshot))
