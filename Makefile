# DriveEnv set-up and entry points. Both targets create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU build of torch by default; set TORCH_SPEC="torch==2.13.0 --index-url <your CUDA index>" for a GPU build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: test test-fast test-e2e demo lint format install clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Everything, training included; prints the 15 slowest tests. PYTEST_ARGS adds options (.ci/run
# passes a session time limit).
test: lint
	$(BIN)/python -m pytest -q --durations=15 $(PYTEST_ARGS)

# The unit tests a developer runs while working: no training, nothing marked slow.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not training" --durations=10 $(PYTEST_ARGS)

# The full demo end to end with its assertions (about 10 minutes on 2 idle cores).
test-e2e: $(STAMP)
	DRIVEENV_E2E_DEMO=1 $(BIN)/python -m pytest -q tests/e2e/test_demo.py $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/driveenv demo

clean:
	rm -rf $(VENV) runs .pytest_cache
