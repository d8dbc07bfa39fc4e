# Barid: the two commands of the README, and a few helpers.
#   make demo   install Barid into .venv and start the demo (SQLite, ./barid-demo)
#   make test   install Barid with the test tools into .venv and run ruff, mypy and the whole suite
#   make shell  a shell with .venv/bin on PATH (so `barid ...` works as the README writes it)
#   make lock   regenerate requirements.lock (pinned, hashed runtime dependencies)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
TSTAMP  = $(VENV)/.installed-test
PIP     = $(BIN)/pip --disable-pip-version-check

.PHONY: demo test lint shell lock check-python clean

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Barid needs Python 3.11 or newer (found %d.%d)" % sys.version_info[:2])'
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { echo "Python's venv module is missing: sudo apt-get install python3-venv"; exit 1; }

$(BIN)/python: | check-python
	@echo "==> creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> updating pip"
	@$(PIP) install --quiet --upgrade pip

# Runtime dependencies only: what a plain `pip install .` gives.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "==> installing Barid and its runtime dependencies into $(VENV) (a few minutes the first time)"
	@$(PIP) install --progress-bar off -e . 2>&1 | grep -E '^(Collecting|Successfully|ERROR)' || true
	@$(BIN)/python -c 'import admin.cli' || { echo "installation failed: run '$(PIP) install -e .' to see why"; exit 1; }
	@touch $@

$(TSTAMP): $(STAMP)
	@echo "==> installing the test tools (pytest, ruff, mypy, ...) into $(VENV)"
	@$(PIP) install --progress-bar off -e '.[test]' 2>&1 | grep -E '^(Collecting|Successfully|ERROR)' || true
	@$(BIN)/python -c 'import pytest, mypy' || { echo "installation failed: run \"$(PIP) install -e '.[test]'\" to see why"; exit 1; }
	@touch $@

demo: $(STAMP)
	@echo "==> starting the demo in ./barid-demo (Ctrl-C stops it); in another terminal, 'make shell' puts barid on PATH"
	$(BIN)/barid demo --data-dir ./barid-demo

lint: $(TSTAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Two workers (pytest-xdist), a test file per worker at a time so module fixtures are
# made once; the 20 slowest tests are listed at the end.
test: lint
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=20

shell: $(STAMP)
	@echo "==> a shell with $(VENV)/bin on PATH; 'exit' leaves it"
	@PATH="$(abspath $(BIN)):$$PATH" VIRTUAL_ENV="$(abspath $(VENV))" $${SHELL:-/bin/sh} -i

lock: | $(BIN)/python
	@echo "==> resolving the runtime dependencies into requirements.lock (with hashes)"
	@$(PIP) install --quiet 'pip-tools>=7.4,<8'
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url \
		--no-emit-find-links --output-file=requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
