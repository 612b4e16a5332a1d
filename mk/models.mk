# Japanese corpus, tokenizer and the shipped models (issue 6). Python side only;
# none of this is needed by `make build`, `make run` or `make test`.
#   make corpus        Debian Japanese docs -> Scripts/corpus/out/{train,valid}.txt (minutes)
#   make tokenizer     SentencePiece model on the training split
#   make train-test    checks the C++ Mamba scan against transformers' stock Mamba and Jamba
#   make train         trains (or resumes) the models of TRAIN_ARCHS side by side (llama,
#                      mamba, jamba: same tokens, order, seed, budget), exports to Models/
#   make train-bg      the same in the background, log in runs/train.log
#   make eval          validation perplexity, bits/char and the two baselines, for each
#                      model directory present in Models/
#   make loss-plot     Models/loss.png and Models/loss.svg from Models/*-loss.csv
#   make samples       the model card's samples and their share of digits (release build, no Python packages)

CORPUS_OUT   := Scripts/corpus/out
TOKENIZER    := $(CORPUS_OUT)/tokenizer.model
TRAIN_TOKENS ?= 3000000
TRAIN_THREADS ?= 1
TRAIN_ARGS   ?=
TRAIN_ARCHS  ?= llama mamba jamba
EVAL_CONTEXT ?= 512
MODELS_DIRS  := $(wildcard Models/orochi-ja-llama Models/orochi-ja-mamba Models/orochi-ja-jamba)
LOSS_ARCHS   = $(patsubst Models/%-loss.csv,%,$(wildcard Models/llama-loss.csv Models/mamba-loss.csv Models/jamba-loss.csv))

.PHONY: corpus tokenizer train train-bg train-test eval loss-plot validation-sample samples

# `make corpus` always rebuilds; the other targets only build the corpus when it is missing
# (a rebuilt corpus would invalidate a tokenizer and training runs in progress).
corpus:
	$(PYTHON) Scripts/corpus/build_corpus.py --out $(CORPUS_OUT)
$(CORPUS_OUT)/train.txt:
	$(PYTHON) Scripts/corpus/build_corpus.py --out $(CORPUS_OUT)

tokenizer: $(TOKENIZER)
$(TOKENIZER): | $(CORPUS_OUT)/train.txt
	$(PYTHON) Scripts/corpus/train_tokenizer.py --input $(CORPUS_OUT)/train.txt --prefix $(CORPUS_OUT)/tokenizer

train-test:
	$(PYTHON) Scripts/training/test_scan.py --bench

# The models of TRAIN_ARCHS train at once, one thread each (on two shared cores two runs
# at a time beat one run on two threads; a third shares the cores). They read the same
# tokens in the same seeded order with the same budget and seed. Each resumes from
# runs/<arch>/ckpt.pt; the token budget is fixed per run (rm -rf runs/<arch> to start
# again). Logs: runs/<arch>/train.log. TRAIN_ARCHS=jamba trains one model alone.
train: | $(TOKENIZER)
	@pids=""; for a in $(TRAIN_ARCHS); do mkdir -p runs/$$a; \
	  OMP_WAIT_POLICY=PASSIVE $(PYTHON) Scripts/train.py --arch $$a --tokens $(TRAIN_TOKENS) --threads $(TRAIN_THREADS) $(TRAIN_ARGS) >> runs/$$a/train.log 2>&1 & pids="$$pids $$!"; \
	done; rc=0; for p in $$pids; do wait $$p || rc=1; done; \
	for a in $(TRAIN_ARCHS); do tail -n 2 runs/$$a/train.log; done; exit $$rc
	$(MAKE) --no-print-directory loss-plot VENV=$(VENV)

train-bg: | $(TOKENIZER)
	@mkdir -p runs
	nohup $(MAKE) --no-print-directory train VENV=$(VENV) TRAIN_TOKENS=$(TRAIN_TOKENS) TRAIN_THREADS=$(TRAIN_THREADS) TRAIN_ARCHS="$(TRAIN_ARCHS)" > runs/train.log 2>&1 &
	@echo "training in the background: tail -f runs/train.log $(foreach a,$(TRAIN_ARCHS),runs/$(a)/train.log)"

eval: | $(CORPUS_OUT)/train.txt
	@for m in $(MODELS_DIRS); do \
	  $(PYTHON) Scripts/eval_perplexity.py --model $$m --file $(CORPUS_OUT)/valid.txt --context $(EVAL_CONTEXT) || exit 1; \
	  $(PYTHON) Scripts/eval_perplexity.py --model $$m --file Models/validation-sample.txt --context 256 --stride 128 || exit 1; \
	done
	$(PYTHON) Scripts/baselines.py --tokenizer Models/orochi-ja-llama/tokenizer.model \
	  --train $(CORPUS_OUT)/train.txt --valid $(CORPUS_OUT)/valid.txt Models/validation-sample.txt

loss-plot:
	gnuplot -e "archs='$(LOSS_ARCHS)'" Scripts/training/loss.gp

samples: build
	python3 Scripts/card_samples.py $(RELEASE) $(MODELS)
