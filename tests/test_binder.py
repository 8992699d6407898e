"""The Binder environment: what repo2docker would build, and the files it reads.

What repo2docker reads from `binder/`: runtime.txt (the Python version), apt.txt (Debian
packages), requirements.txt (pip, run from the repository root) and `start` (run at launch
with the server's command line, which it must exec). `repo2docker --no-build` prints the
Dockerfile Binder would build (no Docker needed); the tests read it, check each file says
what a working launch needs, and run `start` for real.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"


def _lines(name: str) -> list[str]:
    text = (BINDER / name).read_text()
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_binder_files_exist():
    for name in ("requirements.txt", "runtime.txt", "apt.txt", "start"):
        assert (BINDER / name).is_file(), name


def test_runtime_is_python_3_11_and_allowed_by_the_project():
    assert _lines("runtime.txt") == ["python-3.11"]
    requires = _pyproject()["project"]["requires-python"]
    assert requires == ">=3.11"


def test_requirements_install_the_project_with_the_notebook_extra():
    lines = _lines("requirements.txt")
    project = [line for line in lines if re.fullmatch(r"(-e\s+)?\.(\[[\w,\s-]+\])?", line)]
    assert len(project) == 1, lines
    extras = re.findall(r"[\w-]+", project[0].split("[", 1)[1]) if "[" in project[0] else []
    assert "notebook" in extras
    notebook = " ".join(_pyproject()["project"]["optional-dependencies"]["notebook"])
    for package in ("ipywidgets", "ipykernel", "jupyterlab"):
        assert package in notebook, package


def test_requirements_bring_what_the_tutorials_start():
    lines = _lines("requirements.txt")
    assert any(line.startswith("moto[server]") for line in lines)  # tutorial 6's S3 server
    assert "postgresql" in _lines("apt.txt")  # tutorial 4's PostgreSQL
    deps = " ".join(_pyproject()["project"]["dependencies"])
    assert "s3fs" in deps


def test_start_is_an_executable_script_that_execs_its_arguments():
    start = BINDER / "start"
    assert os.access(start, os.X_OK)
    text = start.read_text()
    assert text.startswith("#!/bin/bash\n")
    commands = [line.strip() for line in text.splitlines()
                if line.strip() and not line.strip().startswith("#")]
    assert commands[-1] == 'exec "$@"'
    subprocess.run(["bash", "-n", str(start)], check=True)


def test_start_opens_the_notebooks_folder():
    out = subprocess.run([str(BINDER / "start"), sys.executable, "-c",
                          "import os; print(os.getcwd())"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    assert Path(out.stdout.strip()) == ROOT / "notebooks"


def test_start_passes_the_exit_status_through():
    done = subprocess.run([str(BINDER / "start"), "sh", "-c", "exit 7"], cwd=ROOT)
    assert done.returncode == 7


def test_the_tutorials_are_there():
    names = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    for name in ("01_delivery_guarantees.ipynb", "02_category_revenue.ipynb",
                 "03_windows.ipynb", "06_checkpoints_on_s3.ipynb"):
        assert name in names


def _dockerfile() -> str:
    done = subprocess.run([sys.executable, "-m", "repo2docker", "--no-build", "--no-run",
                           "--debug", str(ROOT)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_repo2docker_builds_python_3_11_with_postgresql_and_the_project():
    dockerfile = _dockerfile()
    assert "python=3.11" in dockerfile
    assert re.search(r"apt-get install[^\n]*\bpostgresql\b", dockerfile)
    copy_repo = re.search(r"COPY --chown=\d+:\d+ src/ \$\{REPO_DIR\}/\n", dockerfile)
    install = dockerfile.find('pip install --no-cache-dir -r "binder/requirements.txt"')
    assert copy_repo is not None and 0 < copy_repo.start() < install  # `-e .` needs the repo
    assert 'ENV R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in dockerfile
