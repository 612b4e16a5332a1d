# The HTTP server (issue 13, docs/server.md). `make server` builds orochi-server (the package in
# Server/, so that `make run` builds none of Hummingbird) and puts it beside orochi in
# .build/release/, where `orochi serve` looks for it.
# `make server-check` starts it on a free port and runs Scripts/server_check.py, a client written
# with the official `openai` package (installed in a git-ignored venv), then stops it.

SERVER        := .build/release/orochi-server
SERVER_MODEL  ?= Models/orochi-ja-llama
SERVER_VENV   ?= build/server-venv
SERVER_PYTHON := $(SERVER_VENV)/bin/python
# Prints a TCP port free on loopback.
FREE_PORT     := python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'

# `make load`: Scripts/server/load.py against one server on loopback: a single stream first, then
# LOAD_CONCURRENCY streams for LOAD_SECONDS, with the server's resident memory. LOAD_MODEL defaults
# to the peer comparison's random-weight llama-130m in float16 (`make peer-models`, which needs
# PyPI for its venv once); any model directory works: `make load LOAD_MODEL=Models/orochi-ja-mamba`.
# `make serve-replicas`: two servers behind nginx (Debian's, installed when missing) on loopback,
# the same load through nginx, and one replica stopped (REPLICA_SIGNAL=TERM drains it, KILL kills
# it) REPLICA_STOP_AT seconds in. docs/serving.md has both runs' results.
LOAD_MODEL        ?= build/peer/models/llama-130m/f16
LOAD_CONCURRENCY  ?= 8
LOAD_SECONDS      ?= 600
LOAD_BASELINE     ?= 60
LOAD_WARMUP       ?= 60
LOAD_MAX_TOKENS   ?= 64
LOAD_THREADS      ?= 2
LOAD_ARGS         ?=
REPLICA_MODEL     ?= Models/orochi-ja-llama
REPLICA_SECONDS   ?= 60
REPLICA_STOP_AT   ?= 20
REPLICA_SIGNAL    ?= TERM

.PHONY: server server-check server-venv load serve-replicas nginx-deps

server: build
	cd Server && $(SWIFT) build -c release --product orochi-server
	cp Server/.build/release/orochi-server $(SERVER)

# python3-venv is a separate Debian package: install it when `python3 -m venv` is missing.
server-venv: $(SERVER_PYTHON)
$(SERVER_PYTHON):
	@python3 -c 'import ensurepip, venv' 2>/dev/null || { $(SUDO) apt-get update && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends python3-venv; }
	python3 -m venv $(SERVER_VENV)
	$(SERVER_VENV)/bin/pip install -q openai

server-check: server $(SERVER_PYTHON)
	@mkdir -p build; \
	port=$$($(FREE_PORT)); \
	$(SERVER) --model $(SERVER_MODEL) --port $$port --max-queue 8 > build/server-check.log 2>&1 & pid=$$!; \
	$(SERVER_PYTHON) Scripts/server_check.py --base-url http://127.0.0.1:$$port/v1 --server-pid $$pid; status=$$?; \
	kill $$pid 2>/dev/null; wait $$pid 2>/dev/null; \
	if [ $$status -ne 0 ]; then echo "--- server log (build/server-check.log)"; cat build/server-check.log; fi; \
	exit $$status

$(LOAD_MODEL)/config.json:
	@case "$(LOAD_MODEL)" in build/peer/models/*) \
	  $(MAKE) --no-print-directory peer-models PEER_SHAPES=$$(echo "$(LOAD_MODEL)" | cut -d/ -f4) ;; \
	  *) echo "load: $(LOAD_MODEL) has no config.json" >&2; exit 1 ;; esac

load: server $(SERVER_PYTHON) $(LOAD_MODEL)/config.json
	@mkdir -p build/load; \
	port=$$($(FREE_PORT)); \
	$(SERVER) --model $(LOAD_MODEL) --port $$port --threads $(LOAD_THREADS) --max-batch $(LOAD_CONCURRENCY) \
	  > build/load/server.log 2>&1 & pid=$$!; \
	for i in $$(seq 1 600); do curl -sf http://127.0.0.1:$$port/health > /dev/null && break; sleep 0.5; done; \
	$(SERVER_PYTHON) Scripts/server/load.py --base-url http://127.0.0.1:$$port --server-pid $$pid \
	  --concurrency $(LOAD_CONCURRENCY) --duration $(LOAD_SECONDS) --baseline-seconds $(LOAD_BASELINE) \
	  --warmup $(LOAD_WARMUP) --max-tokens $(LOAD_MAX_TOKENS) --progress 60 --json build/load/report.json $(LOAD_ARGS); \
	status=$$?; kill $$pid 2>/dev/null; wait $$pid 2>/dev/null; exit $$status

# Idempotent: installs nginx and curl only when missing.
nginx-deps:
	@missing=""; for p in nginx curl; do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi

serve-replicas: server $(SERVER_PYTHON) nginx-deps
	SERVER=$(SERVER) MODEL=$(REPLICA_MODEL) PYTHON=$(SERVER_PYTHON) DURATION=$(REPLICA_SECONDS) \
	  STOP_AT=$(REPLICA_STOP_AT) SIGNAL=$(REPLICA_SIGNAL) OUT=build/serve-replicas \
	  bash Scripts/server/serve_replicas.sh
