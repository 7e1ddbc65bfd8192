# visionops — one entry point for people and CI.
#   make run    set up .venv (once) and run the whole pipeline: dvc repro
#   make test   set up .venv (once), lint, run the test suite
#   make test-fast   the same without the slow tests (markers e2e, slow): a few minutes
#   make test-slow   the slow tests alone (with test-fast: all of make test)
#   make baseline   re-run what changed and refresh dvc.lock + metrics (commit them)
#   make server / server-stop   the team's stack on 127.0.0.1: PostgreSQL, S3, mlflow server
#   make ui     open the MLflow UI on the project's store
#   make ui-check   check that UI in headless Chromium (screenshots in ui-check/)
PYTHON ?= python3
# Lint what exists (git keeps no empty folders).
LINT   := $(wildcard src pipeline tests benchmarks scripts)
VENV   ?= .venv
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_STAMP   := $(VENV)/.installed-test
SERVER_STAMP := $(VENV)/.installed-server

# Stage commands call `python`: make it the venv's. Hygiene for every process.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export NO_ALBUMENTATIONS_UPDATE := 1
export MLFLOW_DISABLE_TELEMETRY := true
export GX_ANALYTICS_ENABLED := False

.PHONY: install install-test install-server torch-cpu run baseline test test-fast test-slow lint format ui ui-check \
	server server-stop clean-outputs

install: $(STAMP)
install-test: $(TEST_STAMP)
install-server: $(SERVER_STAMP)

# Re-installs only when pyproject.toml or the resolved set (constraints.txt) changed. `make run`
# needs the pipeline alone; the tests also need the linters and the team stack (`.[server]`).
# pip byte-compiles each installed file one by one (~100 s of a fresh install here); COMPILE
# does the same on every core afterwards (~60 s). A package's own unparsable file (a Python 2
# example, say) is skipped by both, so compileall's exit status is not an error.
PIP_INSTALL := $(BIN)/python -m pip install --quiet --no-compile --constraint constraints.txt
COMPILE := $(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP_INSTALL) --editable .
	$(COMPILE)
	touch $@

$(TEST_STAMP): $(STAMP)
	$(PIP_INSTALL) --editable '.[test,server]'
	$(COMPILE)
	touch $@

$(SERVER_STAMP): $(STAMP)
	$(PIP_INSTALL) --editable '.[server]'
	$(COMPILE)
	touch $@

# Machines without a GPU (CI runners): PyTorch's CPU wheels at the pinned versions instead of
# the default CUDA build (several GB); `make install` then finds torch already satisfied.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PINS := $(shell grep -E '^(torch|torchvision)==' constraints.txt)

torch-cpu:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --index-url $(TORCH_CPU_INDEX) $(TORCH_PINS)

run: install
	dvc repro

# The committed baseline (dvc.lock, curated metrics, plot data) as this code makes it; a test
# (tests/test_baseline.py) fails when a stage's code or params changed without this.
# register's metrics depend on the store's champion: refresh from a fresh store (move
# mlflow.db and mlartifacts/ aside) so the baseline is what a fresh clone's first run makes.
baseline: install
	dvc repro
	@echo "baseline refreshed: git add dvc.lock reports/metrics reports/train_history.csv reports/predictions.csv && git commit"

# Two pytest-xdist workers (one per core here; JOBS=1 for one process), a module per worker at a
# time (loadfile: module fixtures, one set of servers per module); conftest starts one worker on
# a module that needs the session's pipeline template (it makes it) and the other on the slow
# modules that do not, then the template's other users, then the units.
JOBS ?= 2
PYTEST := python -m pytest -n $(JOBS) --dist loadfile --no-loadscope-reorder

test: install-test lint
	$(PYTEST)

# Lanes by speed (markers in pyproject.toml): the fast lane is every unit test; the slow lane
# is the rest (e2e: a real `dvc repro` or the team stack; slow: several processes at once).
# CI runs the fast lane, then the slow one: together they are `make test`'s pytest.
FAST_LANE := not e2e and not slow
test-fast: install-test lint
	$(PYTEST) -m "$(FAST_LANE)"

test-slow: install-test
	$(PYTEST) -m "not ($(FAST_LANE))"

lint: install-test
	ruff check $(LINT)
	ruff format --check $(LINT)
	lint-imports --no-cache

format: install-test
	ruff format $(LINT)
	ruff check --fix $(LINT)

ui: install
	@echo "MLflow UI: http://127.0.0.1:5000/#/experiments?workflowType=machine_learning (training runs, not the GenAI view)"
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --default-artifact-root $(CURDIR)/mlartifacts --host 127.0.0.1 --port 5000

# The team's stack on 127.0.0.1 (PostgreSQL, S3, mlflow server with logins); state in .server/.
# Ports: make server MLFLOW_PORT=5000 PG_PORT=5433 S3_PORT=8333
MLFLOW_PORT ?= 5000
PG_PORT ?= 5433
S3_PORT ?= 8333
server: install-server
	python scripts/team_stack.py start --mlflow-port $(MLFLOW_PORT) --pg-port $(PG_PORT) --s3-port $(S3_PORT)

server-stop:
	python scripts/team_stack.py stop

# The MLflow UI in a real headless browser: runs table and commits (installs chromium if missing).
ui-check: install
	python scripts/ui_check.py --out ui-check
