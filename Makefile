# Two set-up commands: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_PROGRESS_BARS := 1
export TRANSFORMERS_VERBOSITY := error
DEMO_DIR ?= demo-work

.PHONY: venv demo test test-chaos test-compose lint typecheck unit clean

venv: $(STAMP)

# torch is pinned here (not in pyproject) so pip takes the local CPU wheel, never a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,demo,s3]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/im2sp demo --workdir $(DEMO_DIR)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck unit

# Crash-resume with 10 seeded SIGKILL points per shard-writing flow (make test tries 2); IM2SP_CHAOS_SEED varies them.
test-chaos: $(STAMP)
	IM2SP_CHAOS_POINTS=$${IM2SP_CHAOS_POINTS:-10} $(BIN)/python -m pytest -q -s tests/test_chaos.py

# The compose stack built, started and driven for real (docker/README.md): as root, or with a running engine.
test-compose: $(STAMP)
	PYTHON=$(BIN)/python docker/test-compose.sh

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
