# Orochi — build, run and test. `make run` and `make test` do all set-up on a fresh
# Debian machine with Swift: `deps` installs the system packages that are missing.

SWIFT      ?= swift
RELEASE    := .build/release/orochi
VENV       ?= .venv
PYTHON     := $(VENV)/bin/python
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_DEPS   := libopenblas-dev pkg-config gnuplot-nox fonts-noto-cjk
MODEL      ?= Models/orochi-ja-mamba
MODELS     := Models/orochi-ja-llama Models/orochi-ja-mamba Models/orochi-ja-jamba
PROMPT     ?= ファイルを開くには
THREADS    ?= 2

.PHONY: all deps build run compare test fixtures venv bench-quick clean

all: build

# Idempotent: installs only what is missing (apt-get update once, first).
deps:
	@missing=""; for p in $(APT_DEPS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi

build: deps
	$(SWIFT) build -c release --product orochi

run: build
	$(RELEASE) generate --model $(MODEL) --prompt "$(PROMPT)" --max-tokens 64 --temperature 0.8 --top-p 0.95 --seed 1

# The three shipped models on the same prompt and seed: text, speed, and the size of what each keeps
# of the context (the transformer's KV cache grows with it, the SSM's state does not, the hybrid has both).
compare: build
	@for m in $(MODELS); do \
	  echo "== $$m"; \
	  $(RELEASE) generate --model $$m --prompt "$(PROMPT)" --max-tokens 64 --temperature 0.8 --top-p 0.95 --seed 1 \
	    --save-state /tmp/orochi-compare.state 2>/tmp/orochi-compare.err || { cat /tmp/orochi-compare.err; exit 1; }; \
	  grep -E "saved state|tokens/s" /tmp/orochi-compare.err | sed 's/^/   /'; \
	  $(RELEASE) inspect --model $$m | grep -E "^(parameters|kv cache per token|state \(fixed\))" | sed 's/^/   /'; \
	done; rm -f /tmp/orochi-compare.state /tmp/orochi-compare.err

# Tests run on the optimised build, the code users run: the shipped-model and kernel tests
# take minutes unoptimised and seconds optimised. -enable-testing keeps @testable imports.
# --no-parallel: the kernel tests force process-wide settings (the kernel family, the thread
# count) while they run, which tests running beside them would see half-way through a pass.
# The server's tests (Server/, a package of its own) follow, in a debug build: compiling SwiftNIO
# and Hummingbird optimised would take longer than the tests take unoptimised.
test: deps
	$(SWIFT) test -c release -Xswiftc -enable-testing --no-parallel
	cd Server && $(SWIFT) test --no-parallel

# Python tooling for reference fixtures (never needed by build, run or test).
venv: $(PYTHON)
$(PYTHON): Scripts/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r Scripts/requirements.txt
	touch $(PYTHON)

# Regenerates the committed reference outputs under Tests/OrochiTests/Fixtures.
fixtures: venv
	$(PYTHON) Scripts/make_fixtures.py --out Tests/OrochiTests/Fixtures

bench-quick: build
	OPENBLAS_NUM_THREADS=$(THREADS) $(RELEASE) bench --preset llama-130m --preset mamba-130m --contexts 128,1024,8192 --decode-tokens 32 --repetitions 3 --threads $(THREADS)

clean:
	rm -rf .build

# Targets of each part of the project (tokenizer, models, benchmarks) live in mk/*.mk.
-include mk/*.mk
