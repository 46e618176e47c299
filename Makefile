# leadpipe developer and CI entry points. Everything runs from the repository's .venv (created by `make bootstrap`).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help bootstrap kafka-jars postgres node-tools spam-engine hydra browser fonts demo test lint bench schemas image

help:
	@echo "make demo   run the whole pipeline end to end on embedded defaults (local Kafka, SQLite, dry-run HubSpot), then serve the console until Ctrl-C"
	@echo "make test   the whole test suite against a real Kafka 4.x and PostgreSQL (both started for you)"
	@echo "make lint   ruff check, ruff format --check, mypy --strict, the layer contract, schema, AsyncAPI and CLI reference drift"
	@echo "make bench  benchmarks (each prints ratios against a baseline measured in the same run)"
	@echo "make image  the container image leadpipe:<version> (docker, podman or buildah, whichever works)"

bootstrap:
	@scripts/bootstrap.sh

# Java 17 + Maven + the broker jars, unless the tests are pointed at an existing broker.
kafka-jars: bootstrap
	@if [ -z "$${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then scripts/ensure-kafka-jars.sh; fi

postgres:
	@scripts/ensure-postgres.sh

# The AsyncAPI schema and parser and the chart's CRD models (npm, pinned); the tests that need them skip without.
node-tools:
	@scripts/ensure-node-tools.sh >/dev/null || echo "make: node tools not installed; their tests will skip" >&2

# rspamd + Redis (+ SpamAssassin's stock rules) from Debian's packages; the tests start the engine themselves.
spam-engine:
	@scripts/ensure-spam-engine.sh

# The OpenID Connect provider the sign-in tests start (Ory Hydra, built once with Go into ~/.cache/leadpipe/hydra).
hydra:
	@scripts/ensure-hydra.sh >/dev/null

# The console's browser tests: Debian's chromium (apt, needs root once) and axe-core from the npm registry (cached).
browser:
	@scripts/ensure-chromium.sh >/dev/null
	@scripts/vendor-console-assets.sh >/dev/null

# The fonts of the access copies (PDF): DejaVu Sans and Droid Sans Fallback (CJK), from Debian's packages.
fonts:
	@scripts/ensure-fonts.sh || echo "make: fonts not installed; access copies will write other scripts as escapes" >&2

demo: bootstrap kafka-jars spam-engine fonts
	$(BIN)/leadpipe demo

# pytest's exit code 5 means "no tests collected": a broken collection must never look like a green run.
test: bootstrap kafka-jars node-tools spam-engine hydra browser fonts
	@url="$$(scripts/ensure-postgres.sh)"; \
	export LEADPIPE_TEST_POSTGRES_URL="$${LEADPIPE_TEST_POSTGRES_URL:-$$url}"; \
	export LEADPIPE_HYDRA_BIN="$${LEADPIPE_HYDRA_BIN:-$$(scripts/ensure-hydra.sh)}"; \
	rc=0; $(BIN)/pytest -q $(PYTEST_ARGS) || rc=$$?; \
	if [ "$$rc" -eq 5 ]; then echo "make test: pytest collected no tests; failing" >&2; exit 1; fi; \
	exit "$$rc"

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict pipeline
	$(BIN)/lint-imports
	$(BIN)/python scripts/architecture.py check
	$(BIN)/leadpipe schemas check
	$(BIN)/leadpipe asyncapi check
	$(BIN)/leadpipe docs check

schemas: bootstrap
	$(BIN)/leadpipe schemas generate
	$(BIN)/leadpipe asyncapi generate

bench: bootstrap kafka-jars spam-engine
	@url="$$(scripts/ensure-postgres.sh)"; \
	export LEADPIPE_TEST_POSTGRES_URL="$${LEADPIPE_TEST_POSTGRES_URL:-$$url}"; \
	$(BIN)/python scripts/run-benches.py

# The Dockerfile's image; IMAGE=registry/leadpipe to name it otherwise.
image:
	@scripts/build-image.sh
