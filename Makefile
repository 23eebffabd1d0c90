# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Everything the project needs is installed here, into .venv, from the registries.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean setup docs

setup: $(STAMP)

# the C decoder is compiled by the editable install, so a change to it re-runs the install
$(STAMP): pyproject.toml src/medledger/ledger/_speedups.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/medledger demo --data $${DATA:-demo-data/run-$$(date +%Y%m%d-%H%M%S)} --port $${PORT:-8400} --duration $${DURATION:-90}

test: $(STAMP) lint
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/python -m medledger.contracts.rulebook_doc > docs/rulebook.md

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/proofs.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/fhir_facade.py
	$(BIN)/python bench/floor.py

clean:
	rm -rf $(VENV) demo-data .pytest_cache .mypy_cache .ruff_cache
