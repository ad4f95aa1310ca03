# Two commands on a fresh machine:  `make run` (the main job) and `make test` (the tests).
# Both create the virtual environment .venv on first use. `make docs` builds the documentation site.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# The embedded default: tracking and registry in SQLite, artifacts under ./mlruns.
# Set MLFLOW_TRACKING_URI in your shell to use a tracking server instead.
export MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db
export MLFLOW_EXPERIMENT_NAME ?= deepfake-detection
UI_PORT ?= 5000

.PHONY: install run test test-fast lint docs ui clean
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

run: install
	PATH="$(BIN):$$PATH" mlflow run . -e main --env-manager local

test: install
	bash .ci/ensure-postgres  # the tests marked `server` start a private PostgreSQL
	bash .ci/ensure-chromium  # the test marked `browser` drives the MLflow UI in headless Chromium
	bash .ci/ensure-java  # the tests marked `spark` start a local Spark (JVM)
	$(BIN)/python -m pytest

# The fast tier: every test not marked slow (no training, servers, Spark, browser or `mlflow run`).
test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

# The documentation site (MkDocs + Material, mkdocs.yml) into site/; --strict turns every warning
# (a broken link, a page missing from the nav) into a failure.
docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site  # no banner about MkDocs 2 on every build

$(VENV)/.docs-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $@

# Prints links that open the leaderboard (architecture runs by test ROC-AUC), then starts `mlflow ui`.
ui: install
	$(BIN)/deepfake-detection ui --port $(UI_PORT)

clean:
	rm -rf $(VENV) data mlflow.db site
