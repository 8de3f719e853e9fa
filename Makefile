# Guanxi — one machine, no Docker. The first run downloads Kafka's jars and builds FerretDB.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PY := $(UV) run --frozen python
ROLE ?= agent
SUBJECT ?= dev-user
PYTEST_ARGS ?=

.PHONY: help install browser wrk console run up down status test test-fast test-faults bench token lint typecheck infra-up infra-down clean-local

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(UV):
	@echo "[make] installing uv (Python package manager) with pip"
	python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

CONSOLE_JS := services/console/node_modules/.installed

install: $(UV) $(CONSOLE_JS) ## create .venv from uv.lock with the machine's Python 3.11; the console's JavaScript from its npm lock
	@UV_PYTHON_DOWNLOADS=never $(UV) sync --frozen --python python3.11 --quiet

# The console's front-end assets (htmx, echarts): pinned with integrity hashes in package-lock.json, installed
# again whenever the lock changes; served by the console itself (no CDN at run time).
$(CONSOLE_JS): services/console/package-lock.json services/console/package.json
	@command -v npm >/dev/null || { echo "[make] npm (Node.js) is needed to install the console's assets" >&2; exit 1; }
	@npm ci --prefix services/console --no-audit --no-fund --loglevel=error
	@touch $@

# Chromium and CJK fonts for the console's browser tests (Debian packages; never `playwright install`).
CHROMIUM := /usr/lib/chromium/chromium
CJK_FONT := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc

browser: ## Debian chromium + fonts-noto-cjk for the console's browser tests (apt-get, as root, when missing)
	@if [ ! -x $(CHROMIUM) ] || [ ! -f $(CJK_FONT) ]; then \
		echo "[make] installing chromium and fonts-noto-cjk with apt-get"; \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-cjk; } \
		|| { echo "[make] ERROR: could not install chromium + fonts-noto-cjk (needs root and Debian's packages)" >&2; exit 1; }; \
		[ -x $(CHROMIUM) ] || { echo "[make] ERROR: $(CHROMIUM) still missing after apt-get" >&2; exit 1; }; \
	fi

console: install ## only the console (web pages, port 8106), against the gateway at CONSOLE_GATEWAY_URL
	@$(PY) -m guanxi_console

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

test: install browser ## the whole suite against real Kafka + FerretDB (started if needed)
	@if [ -z "$$KAFKA_BOOTSTRAP_SERVERS" ] || [ -z "$$MONGODB_URL" ]; then \
		$(PY) deploy/local/infra.py up && $(PY) deploy/local/infra.py purge-test-topics; fi
	@$(UV) run --frozen pytest $(PYTEST_ARGS)

test-fast: install ## the fast tier: rules, use cases on in-memory stores, wiring on FastStream's test broker (no infrastructure)
	@$(UV) run --frozen pytest -m "not integration and not e2e and not faults" $(PYTEST_ARGS)

test-faults: install ## fault-injection tests only
	@$(PY) deploy/local/infra.py up
	@$(UV) run --frozen pytest -m faults $(PYTEST_ARGS)

wrk: ## the HTTP load tool of the gateway benchmark (Debian's wrk, apt-get as root, when missing)
	@command -v wrk >/dev/null || { echo "[make] installing wrk with apt-get"; \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; } \
		|| { echo "[make] ERROR: could not install wrk (needs root and Debian's packages)" >&2; exit 1; }; }

bench: install wrk ## benchmarks (not part of make test); last line is a JSON summary
	@$(PY) deploy/local/infra.py up
	@$(PY) -m bench

token: install ## print a signed development token: make token ROLE=agent SUBJECT=alice
	@$(PY) -m guanxi_gateway.token --role "$(ROLE)" --subject "$(SUBJECT)"

lint: install ## ruff + mypy
	@$(UV) run --frozen ruff check .
	@$(UV) run --frozen mypy shared/guanxi_shared services

clean-local: down ## remove .local (jars, FerretDB binary, data)
	rm -rf .local
