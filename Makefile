# The two README commands, `make demo` and `make test`, do all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export AZURITE_BLOB_PORT ?= 10000
export COSMOS_SERVER_PORT ?= 8081

.PHONY: demo test lint infra-check mutation bench bench-ingest bench-nightly bench-layout bench-events bench-aggregate bench-forecast bench-lake clean help
help:
	@echo "make demo   - the pipeline on generated stores, locally; make demo EMULATORS=1: on Azurite and the"
	@echo "              npm Cosmos-API server (needs Node.js; starts and stops them)"
	@echo "make test   - lint (ruff; checkov on infra/) + the whole test suite (starts and stops the local servers)"
	@echo "make bench  - every benchmark (bench/), not part of the tests; or one: make bench-ingest, bench-nightly,"
	@echo "              bench-layout (a year of nightly Delta commits, before and after maintain_lake),"
	@echo "              bench-events, bench-aggregate (50M lines: needs ~11 GB RAM for pandas), bench-forecast,"
	@echo "              bench-lake (many small files to and from Azurite, with an emulated round trip)"

$(BIN)/.installed: requirements.txt requirements-dev.txt pyproject.toml agent/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e ./agent
	touch $@

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "need Node.js 20+ and npm (for Azurite and the Cosmos DB server)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# make demo EMULATORS=1: the same demo with the lake on Azurite and the stock store on the npm Cosmos-API
# server (batches emulated there, not atomic: shared/local/cosmos_devserver.py). The servers run in memory;
# the ones this target starts are stopped afterwards, also when the demo fails (its exit code is kept).
# The connection string and the server's URL come from `scripts/devservers.sh status`.
ifeq ($(EMULATORS),1)
demo: $(BIN)/.installed node_modules/.installed
	@scripts/devservers.sh status >/dev/null 2>&1 && ours= || ours=1; \
	scripts/devservers.sh start || exit $$?; \
	urls="$$(scripts/devservers.sh status 2>/dev/null)"; \
	lake="$$(sed -n 's/^LAKE=//p' <<<"$$urls")"; \
	cosmos="$$(sed -n 's/^COSMOS=AccountEndpoint=\([^;]*\);.*/\1/p' <<<"$$urls")"; \
	LAKE="$$lake" $(BIN)/inventory demo --cosmos-dev-server "$$cosmos"; rc=$$?; \
	if [ -n "$$ours" ]; then scripts/devservers.sh stop; \
	  echo "(the servers kept the lake and the stock in memory: gone now; the dashboard and telemetry files stay)" >&2; \
	else echo "(the servers ran before this demo: left running)" >&2; fi; \
	exit $$rc
else
demo: $(BIN)/.installed
	$(BIN)/inventory demo
endif

# ruff; the layer contracts (import-linter, [tool.importlinter] in pyproject.toml); every adapter against its
# port (mypy on tests/typecheck/ports_conformance.py); the Bicep (checkov and check_bicep).
lint: $(BIN)/.installed infra-check
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy --follow-imports=silent --ignore-missing-imports --no-incremental tests/typecheck/ports_conformance.py

# checkov scans the Bicep offline. Its own venv: its pins (e.g. packaging<24) conflict with pytest's.
INFRA_VENV := .venv-infra
$(INFRA_VENV)/.installed: requirements-infra.txt
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-infra.txt
	touch $@

infra-check: $(INFRA_VENV)/.installed
	$(INFRA_VENV)/bin/checkov -d infra --framework bicep --skip-download --compact --quiet
	$(INFRA_VENV)/bin/python infra/scripts/check_bicep.py  # what bicep build's semantic pass would catch across files

# Then the unit tests once more in a zone with daylight saving time (Chile: UTC-3 in summer, UTC-4 in winter),
# so a hidden dependence on the machine's zone fails here rather than on a store PC or a laptop.
TEST_TZ ?= America/Santiago
test: $(BIN)/.installed node_modules/.installed lint
	scripts/devservers.sh start
	$(BIN)/pytest -q -p no:cacheprovider; rc=$$?; scripts/devservers.sh stop; [ $$rc -eq 0 ] || exit $$rc
	@echo "the unit tests again under TZ=$(TEST_TZ):"
	TZ=$(TEST_TZ) $(BIN)/pytest -q -p no:cacheprovider tests/unit

# Mutation testing of the pure core with the unit tests (mutmut, a dev dependency; not part of CI: about
# 0.3-0.5 mutants a second on 2 cores). Writes the scores per module into docs/testing.md. Run it when
# shared/core changes; MUTANTS selects mutants by name, e.g. make mutation MUTANTS='shared.core.events.*'.
MUTANTS ?=
mutation: $(BIN)/.installed
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2 $(MUTANTS) || true
	$(BIN)/python scripts/mutation_report.py

bench: bench-ingest bench-nightly bench-layout bench-events bench-chain-cost bench-forecast bench-lake bench-aggregate

bench-ingest: $(BIN)/.installed
	$(BIN)/python bench/ingest.py

bench-nightly: $(BIN)/.installed
	$(BIN)/python bench/nightly.py

bench-layout: $(BIN)/.installed
	$(BIN)/python bench/lake_layout.py

bench-events: $(BIN)/.installed node_modules/.installed
	$(BIN)/python bench/events.py

bench-chain-cost: $(BIN)/.installed node_modules/.installed
	$(BIN)/python bench/chain_cost.py

# statsforecast (the forecast's peer) and its dependencies: bench only, never in the app or the tests' needs.
$(BIN)/.bench-installed: $(BIN)/.installed requirements-bench.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	touch $@

bench-forecast: $(BIN)/.bench-installed
	$(BIN)/python bench/forecast.py

bench-lake: $(BIN)/.installed node_modules/.installed
	$(BIN)/python bench/lake_transfers.py

bench-aggregate: $(BIN)/.installed
	$(BIN)/python bench/aggregate.py --lines 50000000

clean:
	rm -rf $(VENV) $(INFRA_VENV) node_modules .inventory
