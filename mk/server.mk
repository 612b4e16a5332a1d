# The HTTP server (issue 13, docs/server.md). `make server` builds orochi-server (the package in
# Server/, so that `make run` builds none of Hummingbird) and puts it beside orochi in
# .build/release/, where `orochi serve` looks for it.
# `make server-check` starts it on a free port and runs Scripts/server_check.py, a client written
# with the official `openai` package (installed in a git-ignored venv), then stops it.

SERVER        := .build/release/orochi-server
SERVER_MODEL  ?= Models/orochi-ja-llama
SERVER_VENV   ?= build/server-venv
SERVER_PYTHON := $(SERVER_VENV)/bin/python

.PHONY: server server-check server-venv

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
	port=$$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	$(SERVER) --model $(SERVER_MODEL) --port $$port --max-queue 8 > build/server-check.log 2>&1 & pid=$$!; \
	$(SERVER_PYTHON) Scripts/server_check.py --base-url http://127.0.0.1:$$port/v1 --server-pid $$pid; status=$$?; \
	kill $$pid 2>/dev/null; wait $$pid 2>/dev/null; \
	if [ $$status -ne 0 ]; then echo "--- server log (build/server-check.log)"; cat build/server-check.log; fi; \
	exit $$status
