# hanseek: `make run` serves the demo, `make test` runs the whole suite. Both set up .venv first.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip --disable-pip-version-check -q
PORT   ?= 8000

.PHONY: run test install install-dev models system-deps lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Pinned by constraints.txt; torch==2.13.0 is the local CPU wheel.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) install -c constraints.txt -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

system-deps:
	bash scripts/system-deps.sh chromium ocr

# Converts the bundled multilingual-e5-small once into data/models (idempotent).
models: install
	$(BIN)/hanseek models prepare

run: install models
	bash scripts/system-deps.sh ocr || echo "OCR unavailable: page photos will be refused" >&2
	HANSEEK_PORT=$(PORT) $(BIN)/hanseek serve

test: install-dev system-deps
	$(BIN)/hanseek models prepare
	$(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy

# Each benchmark prints one JSON object; run one alone with `.venv/bin/python -m bench.NAME`.
BENCHES := encoder reembed store feed ranker_features events_write images keywords sentiment load

bench: install
	bash scripts/system-deps.sh wrk || echo "wrk unavailable: bench.feed measures HTTP load with httpx only" >&2
	for b in $(BENCHES); do $(BIN)/python -m bench.$$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
