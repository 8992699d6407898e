# Developer entry points. `make test` is what CI runs (.ci/run).

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CHECK_INSTALLED := import importlib.util as u, sys; m = [p for p in ('kernel_engine', 'rwmagic') \
	if u.find_spec(p) is None]; sys.exit(f'not installed: {m}' if m else 0)

.PHONY: venv test demo bench clean

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

test: venv
	$(BIN)/ruff check kernel_engine rwmagic tests bench
	$(BIN)/python -m pytest

demo: venv
	$(BIN)/python -m kernel_engine.demo

bench: venv
	$(BIN)/python bench/bench_core.py

# Removes build and tool caches; keeps .venv (delete it by hand to rebuild from scratch).
clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis bench/results
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
