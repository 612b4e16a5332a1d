# The peer (issue 10): llama.cpp measured in the same run as Orochi. None of this is part of
# `make build`, `make run`, `make test` or CI.
#   make peer         builds llama.cpp's llama-bench (CPU backend, GGML_NATIVE, Release) from the
#                     pinned PyPI sdist llama-cpp-python, which vendors llama.cpp, into build/peer/
#   make peer-venv    a venv for the checkpoint maker and the GGUF converter (build/peer/venv)
#   make bench-peer   random-weight checkpoints (safetensors f32/f16 + GGUF f32/f16), then Orochi
#                     and llama-bench interleaved; writes docs/performance.md and docs/bench/peer/
#   make ceilings     what this machine allows, measured with our kernels (FMA peak, sgemm at layer
#                     shapes, one-token products over a working set, the scan): bench-peer runs it
#                     first and reads its figures against them (Benchmarks/Ceilings/ceilings.c)
# Variables: PEER_SHAPES="6m 130m" (which shapes: 6m, 130m or names such as llama-6m), PEER_QUICK=1
# (one round, depths 0 and 512), PEER_NICE=-10 (both engines under nice -n -10 on a busy machine),
# PEER_APPEND=1 (keep the other shapes' results), PEER_ARGS (more options of Scripts/peer/bench_peer.py,
# e.g. PEER_ARGS="--rounds 5 --max-point-seconds 0"). The first `make peer` needs PyPI (the sdist) and
# apt (cmake, g++); the first `make bench-peer` also PyPI for build/peer/venv.

PEER_VERSION   := 0.3.36
PEER_DIR       := build/peer
PEER_SRC       := $(PEER_DIR)/src/llama_cpp_python-$(PEER_VERSION)
PEER_LLAMA     := $(PEER_SRC)/vendor/llama.cpp
PEER_BUILD     := $(PEER_DIR)/llama.cpp-build
PEER_BENCH     := $(PEER_BUILD)/bin/llama-bench
PEER_VENV      := $(PEER_DIR)/venv
PEER_PY        := $(PEER_VENV)/bin/python
PEER_MODELS    := $(PEER_DIR)/models
PEER_JOBS      ?= 2
PEER_SHAPES    ?= 6m 130m
PEER_QUICK     ?=
PEER_ARGS      ?=
# nice -n for both engines' runs: a negative value (as root) favours the measurements over other work.
PEER_NICE      ?= 0
# PEER_APPEND=1: keep the other shapes' results of docs/bench/peer/results.json (each shape's date is shown).
PEER_APPEND    ?=
PEER_APT_DEPS  := cmake g++

.PHONY: peer peer-deps peer-venv peer-models bench-peer ceilings

# A plain C program on the kernels' own sources, compiled by the toolchain's clang as SwiftPM
# compiles the C target (so it needs nothing that `make build` does not).
CEILINGS       := build/ceilings/ceilings
CEILINGS_ARGS  ?=
$(CEILINGS): Benchmarks/Ceilings/ceilings.c $(wildcard Sources/COrochiKernels/*.c Sources/COrochiKernels/*.h Sources/COrochiKernels/include/*.h)
	@mkdir -p $(dir $@)
	clang -O3 -fno-math-errno -I Sources/COrochiKernels/include -o $@ Benchmarks/Ceilings/ceilings.c \
	  $(wildcard Sources/COrochiKernels/*.c) -ldl -lpthread -lm

ceilings: $(CEILINGS)
	$(CEILINGS) --threads $(THREADS) $(CEILINGS_ARGS)

peer: $(PEER_BENCH)

# Idempotent, as `deps`: installs only what is missing.
peer-deps:
	@missing=""; for p in $(PEER_APT_DEPS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi

$(PEER_SRC)/.unpacked:
	@mkdir -p $(PEER_DIR)/src
	test -f $(PEER_DIR)/src/llama_cpp_python-$(PEER_VERSION).tar.gz || \
	  python3 Scripts/peer/fetch_sdist.py llama-cpp-python $(PEER_VERSION) $(PEER_DIR)/src
	tar -xzf $(PEER_DIR)/src/llama_cpp_python-$(PEER_VERSION).tar.gz -C $(PEER_DIR)/src
	touch $@

# Only the llama-bench target; static libraries so that the binary runs from anywhere.
$(PEER_BENCH): $(PEER_SRC)/.unpacked
	@$(MAKE) --no-print-directory peer-deps
	cmake -S $(PEER_LLAMA) -B $(PEER_BUILD) -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
	  -DBUILD_SHARED_LIBS=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_BLAS=OFF \
	  -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
	  -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_TOOLS=ON
	cmake --build $(PEER_BUILD) --target llama-bench -j $(PEER_JOBS)
	@test -x $@ && touch $@

# The converter's gguf package comes from the vendored llama.cpp (gguf-py), so that converter and
# reader are of the same version; the rest from Scripts/peer/requirements.txt.
# (A stamp file, not the venv's python: that is a symlink, and touching it would touch the system's.)
PEER_VENV_OK   := $(PEER_VENV)/.installed
peer-venv: $(PEER_VENV_OK)
$(PEER_VENV_OK): Scripts/peer/requirements.txt $(PEER_SRC)/.unpacked
	test -x $(PEER_PY) || python3 -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/pip install -q -r Scripts/peer/requirements.txt
	$(PEER_VENV)/bin/pip install -q --no-deps $(PEER_LLAMA)/gguf-py
	touch $@

# Checkpoints: skipped when present (make_checkpoints.py checks each file).
peer-models: $(PEER_VENV_OK)
	$(PEER_PY) Scripts/peer/make_checkpoints.py --out $(PEER_MODELS) --llama-cpp $(PEER_LLAMA) \
	  --tokenizer Models/orochi-ja-llama/tokenizer.model --shapes "$(PEER_SHAPES)"

bench-peer: build peer peer-models $(CEILINGS)
	python3 Scripts/peer/bench_peer.py --orochi $(RELEASE) --llama-bench $(PEER_BENCH) --ceilings $(CEILINGS) --models $(PEER_MODELS) \
	  --shapes "$(PEER_SHAPES)" --threads $(THREADS) --nice $(PEER_NICE) $(if $(PEER_QUICK),--quick) $(if $(PEER_APPEND),--append) \
	  --out-dir docs/bench/peer --doc docs/performance.md $(PEER_ARGS)
	@if [ -f $(SMOLLM2_GGUF) ]; then $(MAKE) --no-print-directory bench-peer-gguf; \
	else echo "no GGUF table: make smollm2 first (a 98 MB download), then make bench-peer-gguf"; fi
