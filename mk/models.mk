# Japanese corpus, tokenizer and the two shipped models (issue 6). Python side only;
# none of this is needed by `make build`, `make run` or `make test`.
#   make corpus        Debian Japanese docs -> Scripts/corpus/out/{train,valid}.txt (minutes)
#   make tokenizer     SentencePiece model on the training split
#   make train-test    checks the C++ Mamba scan against transformers' stock mixer
#   make train         trains (or resumes) Llama then Mamba, exports to Models/ (foreground)
#   make train-bg      the same in the background, log in runs/train.log
#   make eval          validation perplexity, bits/char and the two baselines
#   make loss-plot     Models/loss.png and Models/loss.svg from Models/*-loss.csv

CORPUS_OUT   := Scripts/corpus/out
TOKENIZER    := $(CORPUS_OUT)/tokenizer.model
TRAIN_TOKENS ?= 2000000
TRAIN_THREADS ?= 1
TRAIN_ARGS   ?=
EVAL_CONTEXT ?= 512
MODELS_DIRS  := Models/orochi-ja-llama Models/orochi-ja-mamba

.PHONY: corpus tokenizer train train-bg train-test eval loss-plot validation-sample

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

# Both models train at once, one thread each (on two shared cores this beats one model
# at a time on two threads). Each resumes from runs/<arch>/ckpt.pt; the token budget is
# fixed per run (rm -rf runs/llama runs/mamba to start again). Logs: runs/<arch>/train.log.
train: | $(TOKENIZER)
	@mkdir -p runs/llama runs/mamba
	OMP_WAIT_POLICY=PASSIVE $(PYTHON) Scripts/train.py --arch llama --tokens $(TRAIN_TOKENS) --threads $(TRAIN_THREADS) $(TRAIN_ARGS) >> runs/llama/train.log 2>&1 & l=$$!; \
	OMP_WAIT_POLICY=PASSIVE $(PYTHON) Scripts/train.py --arch mamba --tokens $(TRAIN_TOKENS) --threads $(TRAIN_THREADS) $(TRAIN_ARGS) >> runs/mamba/train.log 2>&1 & m=$$!; \
	wait $$l; a=$$?; wait $$m; b=$$?; tail -n 2 runs/llama/train.log runs/mamba/train.log; [ $$a = 0 ] && [ $$b = 0 ]
	$(MAKE) --no-print-directory loss-plot VENV=$(VENV)

train-bg: | $(TOKENIZER)
	@mkdir -p runs
	nohup $(MAKE) --no-print-directory train VENV=$(VENV) TRAIN_TOKENS=$(TRAIN_TOKENS) TRAIN_THREADS=$(TRAIN_THREADS) > runs/train.log 2>&1 &
	@echo "training in the background: tail -f runs/train.log runs/llama/train.log runs/mamba/train.log"

eval: | $(CORPUS_OUT)/train.txt
	@for m in $(MODELS_DIRS); do \
	  $(PYTHON) Scripts/eval_perplexity.py --model $$m --file $(CORPUS_OUT)/valid.txt --context $(EVAL_CONTEXT) || exit 1; \
	  $(PYTHON) Scripts/eval_perplexity.py --model $$m --file Models/validation-sample.txt --context 256 --stride 128 || exit 1; \
	done
	$(PYTHON) Scripts/baselines.py --tokenizer Models/orochi-ja-llama/tokenizer.model \
	  --train $(CORPUS_OUT)/train.txt --valid $(CORPUS_OUT)/valid.txt Models/validation-sample.txt

loss-plot:
	gnuplot Scripts/training/loss.gp
