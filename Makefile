# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Everything the project needs is installed here, into .venv, from the registries.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean setup docs

setup: $(STAMP)

# The C fast paths are compiled by the editable install, so a change to them re-runs the install.
# Their build is optional (no compiler: the Python paths run alone), so say which one is in use.
$(STAMP): pyproject.toml setup.py src/medledger/ledger/_speedups.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@$(BIN)/python -c "from medledger.ledger.envelope import DECODER; print('medledger: envelope decoder:', DECODER if DECODER == 'c' else 'python (no C compiler found: the slower Python path runs alone)')"
	touch $(STAMP)

# Without DATA the demo builds demo-data/run-<time> and points demo-data/latest (the CLI's default) at it.
demo: $(STAMP)
	$(BIN)/medledger demo $${DATA:+--data $$DATA} --port $${PORT:-8400} --duration $${DURATION:-90}

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
	$(BIN)/python bench/fhir_load.py
	$(BIN)/python bench/floor.py

clean:
	rm -rf $(VENV) demo-data .pytest_cache .mypy_cache .ruff_cache
