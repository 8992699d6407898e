# Developer entry points. `make test` is what CI runs (.ci/run).

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHECK_INSTALLED := import importlib.util as u, sys; m = [p for p in ('kernel_engine', 'rwmagic') \
	if u.find_spec(p) is None]; sys.exit(f'not installed: {m}' if m else 0)

.PHONY: venv services browser test demo lab bench clean

venv: $(VENV)/.installed

# Re-installs whenever pyproject.toml changes. The stamp is written only once both packages
# resolve from outside the repo (-I): an editable install made before a package directory
# existed does not map it, so the next `make` installs again instead of trusting the stamp.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test,notebook]'
	$(BIN)/python -I -c "$(CHECK_INSTALLED)"
	touch $@

# PostgreSQL for the sink tests (they start a throwaway cluster of their own from its binaries).
services:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; then \
		true; \
	elif [ "$$(id -u)" = 0 ]; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y --no-install-recommends postgresql \
		|| (apt-get update && apt-get install -y --no-install-recommends postgresql); \
	else \
		echo "PostgreSQL is missing: sudo apt-get install -y postgresql" >&2; \
	fi

# Chromium for the real-browser test (tests/test_browser.py): Debian's package, never a
# browser download. Under CI=true the test fails when it is missing.
browser:
	@if [ -x /usr/bin/chromium ]; then \
		true; \
	elif [ "$$(id -u)" = 0 ]; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y chromium || (apt-get update && apt-get install -y chromium); \
	else \
		echo "Chromium is missing: sudo apt-get install -y chromium" >&2; \
	fi

test: venv services browser
	$(BIN)/ruff check kernel_engine rwmagic tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

demo: venv
	$(BIN)/python -m kernel_engine.demo

# JupyterLab on the tutorials, with a kernel of this environment (Ctrl-C stops it).
lab: venv
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

bench: venv
	$(BIN)/python bench/bench_core.py

# Removes build and tool caches; keeps .venv (delete it by hand to rebuild from scratch).
clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis bench/results
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
