# wasched — `make help` lists the targets.
SHELL := /bin/bash
# uv from PATH, else the one pip installs as a module (`make uv`).
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST_ARGS ?=

.PHONY: help uv sync lint format test test-faults run init bench bench-quick asyncapi

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

uv: ## install uv if it is missing
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
	  || python3 -m pip install --quiet uv \
	  || python3 -m pip install --quiet --user --break-system-packages uv

sync: uv ## install the locked environment (.venv)
	@$(UV) sync --locked --quiet

lint: sync ## ruff check and format check
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .

format: sync ## format the code
	$(UV) run --locked ruff check --fix .
	$(UV) run --locked ruff format .

test: lint ## lint and run the whole test suite against real servers
	$(UV) run --locked pytest $(PYTEST_ARGS)

test-faults: sync ## only the fault-injection scenarios
	$(UV) run --locked pytest -m faults $(PYTEST_ARGS)

run: sync ## run the whole system locally (embedded NATS + S3 + the three services)
	$(UV) run --locked python -m wasched.cli.stack

init: sync ## write .env, secrets/ and the NATS server config for docker compose (wasched init)
	$(UV) run --locked wasched init

bench: sync ## every benchmark, medians of 3 runs (~15 min; writes bench/RESULTS.md)
	$(UV) run --locked python -m bench

bench-quick: sync ## smoke run of the benchmarks (< 2 min; small sizes, not the targets)
	$(UV) run --locked python -m bench --quick

asyncapi: sync ## regenerate docs/asyncapi.yaml (the event interface) from the event models
	$(UV) run --locked python -m wasched.cli.asyncapi docs/asyncapi.yaml
