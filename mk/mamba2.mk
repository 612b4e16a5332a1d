# Mamba-2 against transformers and llama.cpp on the same weights. Not part of `make build`, `run`,
# `test` or CI (it needs the Python venv and llama.cpp's tools).
#   make mamba2-check        a random-weight Mamba2ForCausalLM with the Japanese vocabulary (small, and
#                            mamba2-130m's shape): transformers' logits against Orochi's on the directory
#                            and on convert_hf_to_gguf.py's F32 and Q8_0 files; llama-perplexity against
#                            orochi perplexity --llama-cpp on each file; orochi quantize's conversion
#                            against convert's, tensor by tensor (Scripts/peer/mamba2_check.py)
#   make bench-peer-mamba2   the mamba2-130m-shaped files, Orochi against llama-bench in one run: the
#                            table in docs/mamba2.md (Scripts/peer/bench_gguf.py)

MAMBA2_CHECK := build/mamba2-check

.PHONY: mamba2-check bench-peer-mamba2

mamba2-check: build peer-tools
	@test -x $(PYTHON) || $(MAKE) venv VENV=$(VENV)
	$(PYTHON) Scripts/peer/mamba2_check.py --orochi $(RELEASE) --threads $(THREADS) --out $(MAMBA2_CHECK)
	$(PYTHON) Scripts/peer/mamba2_check.py --orochi $(RELEASE) --threads $(THREADS) --out $(MAMBA2_CHECK)-130m --shape 130m

bench-peer-mamba2: build peer
	@test -f $(MAMBA2_CHECK)-130m/m2-q8_0.gguf || $(MAKE) mamba2-check
	python3 Scripts/peer/bench_gguf.py --orochi $(RELEASE) --llama-bench $(PEER_BENCH) --threads $(THREADS) \
	  --files $(MAMBA2_CHECK)-130m/m2-f32.gguf $(MAMBA2_CHECK)-130m/m2-q8_0.gguf \
	  --doc docs/mamba2.md --out docs/bench/peer/mamba2.json --made-by "make bench-peer-mamba2"
