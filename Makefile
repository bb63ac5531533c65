# One entry point for people and CI. `make test` bootstraps its own virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SOURCES := $(wildcard tap_polyai tests scripts benchmarks orchestration)

.PHONY: bootstrap lint format test test-orchestration demo emulator bench docs settings readme clean

$(STAMP): pyproject.toml
	@echo "==> bootstrapping $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e . --group dev
	@touch $(STAMP)

bootstrap: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format $(SOURCES)
	$(BIN)/ruff check --fix $(SOURCES)

test: lint
	$(BIN)/python -m pytest -n 2 -q -m "not orchestration"

# The Dagster/Airflow recipes end to end (builds their venvs once; several minutes).
test-orchestration: $(STAMP)
	$(BIN)/python -m pytest -q -m orchestration

demo: $(STAMP)
	@bash scripts/demo.sh

emulator: $(STAMP)
	$(BIN)/polyai-emulator --port 8765

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# The docs site (docs/, mkdocs.yml): a strict build, then served on 127.0.0.1:8000.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict -a 127.0.0.1:8000

# Regenerate the settings tables of docs/configuration.md from `tap-polyai --about`.
settings: $(STAMP)
	$(BIN)/python scripts/docs_settings.py

readme: settings

clean:
	rm -rf $(VENV) .venv-meltano .venv-targets .meltano output .pytest_cache .mypy_cache .ruff_cache
