# `orochi quantize` and llama.cpp's tools on the same files. Not part of `make build`, `run`, `test` or CI.
#   make gguf-models       Models/orochi-ja-{llama,mamba,jamba}.Q8_0.gguf, the shipped Japanese models as Q8_0
#                          (what the committed files are; ShippedGGUFTests checks they equal a fresh conversion)
#   make quantize-check    builds llama.cpp's tools (`make peer-tools`), then: SmolLM2 requantized to Q4_K_M by orochi quantize and by
#                          llama-quantize (the tensor types and bytes compared by cmp), and llama.cpp's
#                          llama-perplexity and llama-bench loading Orochi's files
#   make bench-peer-gguf   SmolLM2 as shipped (Q4_1) and requantized by orochi quantize to Q8_0, Q4_K_M and
#                          Q4_0 (the bytes llama-quantize writes), Orochi against llama-bench in one run:
#                          the table in docs/gguf.md (Scripts/peer/bench_gguf.py)
#   make quantize-fixtures Tests/OrochiTests/Fixtures/quantize (convert_hf_to_gguf.py, llama-quantize,
#                          llama-tokenize: Scripts/fixtures/quantize.py)

QUANTIZE_DIR := build/quantize
PEER_TOOLS   := llama-quantize llama-tokenize llama-perplexity

.PHONY: gguf-models quantize-check quantize-fixtures peer-tools bench-peer-gguf

GGUF_BENCH_TYPES := Q8_0 Q4_K_M Q4_0
bench-peer-gguf: build peer smollm2
	@mkdir -p $(QUANTIZE_DIR)
	for t in $(GGUF_BENCH_TYPES); do $(RELEASE) quantize --model $(SMOLLM2_GGUF) --type $$t --out $(QUANTIZE_DIR)/SmolLM2-135M-Instruct.$$t.gguf || exit 1; done
	python3 Scripts/peer/bench_gguf.py --orochi $(RELEASE) --llama-bench $(PEER_BENCH) --threads $(THREADS) \
	  --files $(SMOLLM2_GGUF) $(foreach t,$(GGUF_BENCH_TYPES),$(QUANTIZE_DIR)/SmolLM2-135M-Instruct.$(t).gguf)

# llama.cpp's tools beside llama-bench, from the same build directory as `make peer`.
peer-tools: peer
	cmake --build $(PEER_BUILD) --target $(PEER_TOOLS) -j $(PEER_JOBS)

gguf-models: build
	$(RELEASE) quantize --model Models/orochi-ja-llama --type Q8_0 --out Models/orochi-ja-llama.Q8_0.gguf
	$(RELEASE) quantize --model Models/orochi-ja-mamba --type Q8_0 --out Models/orochi-ja-mamba.Q8_0.gguf
	$(RELEASE) quantize --model Models/orochi-ja-jamba --type Q8_0 --out Models/orochi-ja-jamba.Q8_0.gguf

quantize-check: build peer-tools smollm2
	@mkdir -p $(QUANTIZE_DIR)
	$(RELEASE) quantize --model $(SMOLLM2_GGUF) --type Q4_K_M --out $(QUANTIZE_DIR)/smollm2-orochi-Q4_K_M.gguf
	$(PEER_BUILD)/bin/llama-quantize --allow-requantize $(SMOLLM2_GGUF) $(QUANTIZE_DIR)/smollm2-llama-Q4_K_M.gguf Q4_K_M 2 >/dev/null 2>&1
	cmp $(QUANTIZE_DIR)/smollm2-orochi-Q4_K_M.gguf $(QUANTIZE_DIR)/smollm2-llama-Q4_K_M.gguf && echo "the two files are identical"
	$(RELEASE) quantize --model Models/orochi-ja-llama --type Q8_0 --out $(QUANTIZE_DIR)/ja-llama-Q8_0.gguf
	$(PEER_BUILD)/bin/llama-bench -m $(QUANTIZE_DIR)/ja-llama-Q8_0.gguf -m $(QUANTIZE_DIR)/smollm2-orochi-Q4_K_M.gguf -t $(THREADS) -p 128 -n 32 -r 2
	$(PEER_BUILD)/bin/llama-perplexity -m $(QUANTIZE_DIR)/ja-llama-Q8_0.gguf -f Models/validation-sample.txt -c 256 -t $(THREADS) 2>&1 | grep -E "Final estimate|error"
	$(RELEASE) perplexity --model $(QUANTIZE_DIR)/ja-llama-Q8_0.gguf --file Models/validation-sample.txt --context 256 --llama-cpp --threads $(THREADS)

quantize-fixtures: peer-tools
	@test -x $(PYTHON) || $(MAKE) venv VENV=$(VENV)
	$(PYTHON) Scripts/make_fixtures.py --out Tests/OrochiTests/Fixtures --only quantize
