# Guanxi — one machine, no Docker. The first run downloads Kafka's jars and builds FerretDB.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PY := $(UV) run --frozen python
ROLE ?= agent
SUBJECT ?= dev-user
PYTEST_ARGS ?=

.PHONY: help install run up down status test test-fast test-faults bench token lint typecheck infra-up infra-down clean-local

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	@echo "[make] installing uv (Python package manager) with pip"
	python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

install: $(UV) ## create .venv from uv.lock with the machine's Python 3.11
	@UV_PYTHON_DOWNLOADS=never $(UV) sync --frozen --python python3.11 --quiet

run: install ## start everything in the foreground (Ctrl-C stops it all)
	@$(PY) deploy/local/stack.py run

up: install ## start everything in the background; returns when the gateway is ready
	@$(PY) deploy/local/stack.py up

down: ## stop the services and the local infrastructure
	@$(PY) deploy/local/stack.py down

status: ## what is running
	@$(PY) deploy/local/stack.py status

infra-up: install ## only Kafka + FerretDB (+ topics)
	@$(PY) deploy/local/infra.py up

infra-down: ## stop Kafka + FerretDB
	@$(PY) deploy/local/infra.py down

test: install ## the whole suite against real Kafka + FerretDB (started if needed)
	@if [ -z "$$KAFKA_BOOTSTRAP_SERVERS" ] || [ -z "$$MONGODB_URL" ]; then \
		$(PY) deploy/local/infra.py up && $(PY) deploy/local/infra.py purge-test-topics; fi
	@$(UV) run --frozen pytest $(PYTEST_ARGS)

test-fast: install ## the fast tier: rules, use cases on in-memory stores, wiring on FastStream's test broker (no infrastructure)
	@$(UV) run --frozen pytest -m "not integration and not e2e and not faults" $(PYTEST_ARGS)

test-faults: install ## fault-injection tests only
	@$(PY) deploy/local/infra.py up
	@$(UV) run --frozen pytest -m faults $(PYTEST_ARGS)

bench: install ## benchmarks (not part of make test); last line is a JSON summary
	@$(PY) deploy/local/infra.py up
	@$(PY) -m bench

token: install ## print a signed development token: make token ROLE=agent SUBJECT=alice
	@$(PY) -m guanxi_gateway.token --role "$(ROLE)" --subject "$(SUBJECT)"

lint: install ## ruff + mypy
	@$(UV) run --frozen ruff check .
	@$(UV) run --frozen mypy shared/guanxi_shared services

clean-local: down ## remove .local (jars, FerretDB binary, data)
	rm -rf .local
