# wasched — `make help` lists the targets.
SHELL := /bin/bash
# uv from PATH, else the one pip installs as a module (`make uv`).
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST_ARGS ?=
# Let Python cache compiled modules: with PYTHONDONTWRITEBYTECODE set (some machines and CI
# images set it) every test process and service start recompiles every import from source,
# which doubled the suite's CPU time.
export PYTHONDONTWRITEBYTECODE :=
# Tests run in parallel: each test file on one worker (a fault scenario file has its own
# servers, prefix and directory). Most of the suite waits on servers, not the CPU, so
# there are more workers than cores.
TEST_WORKERS ?= 6
PARALLEL = -n $(TEST_WORKERS) --dist loadfile
FIGURES ?= .pytest_cache/wasched-figures.json

.PHONY: help uv sync lint format test test-faults test-long reliability test-time run init bench bench-quick asyncapi

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
	$(UV) run --locked pytest $(PARALLEL) $(PYTEST_ARGS)

test-faults: sync ## only the fault-injection scenarios
	$(UV) run --locked pytest -m faults $(PARALLEL) $(PYTEST_ARGS)

test-long: sync ## nightly-style: longer fault windows, more kills, 2000 examples per property
	WASCHED_TEST_LONG=1 HYPOTHESIS_PROFILE=long $(UV) run --locked pytest $(PARALLEL) $(PYTEST_ARGS)

reliability: sync ## run the fault suite and regenerate docs/reliability.md from its figures
	$(UV) run --locked pytest -m faults $(PARALLEL) --wasched-figures=$(FIGURES) $(PYTEST_ARGS)
	$(UV) run --locked python -m tests.faults.reliability $(FIGURES) docs/reliability.md

test-time: ## time `make test` in fresh clones (RUNS=3) and write the figure into the README
	python3 -m tests.timing --runs $${RUNS:-3} --readme README.md

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
