# Benchmarks (issue 7). `make bench` runs the standard scaling sweep and refreshes docs/scaling.md;
# `make microbench` runs the kernel micro-benchmarks of Benchmarks/ (a separate package, so that
# `make test` and `make run` never build the benchmark dependency).

# Presets: random-weight models of published shapes. Shipped models: those present in Models/.
BENCH_PRESETS  ?= llama-130m mamba-130m jamba-130m
BENCH_MODELS   ?= $(wildcard Models/orochi-ja-llama Models/orochi-ja-mamba Models/orochi-ja-jamba)
BENCH_CONTEXTS ?= 128,256,512,1024,2048,4096,8192,16384
BENCH_DECODE   ?= 32
BENCH_REPS     ?= 3
# Seconds after which a point stops repeating (one repetition always runs): the quadratic
# top contexts get fewer repetitions, which keeps the sweep under 10 minutes on 2 cores.
BENCH_POINT_S  ?= 30
BENCH_BREAKDOWN ?= 128,4096
BENCH_OUT      ?= docs/bench/scaling
BENCH_ARGS     ?=

.PHONY: bench microbench

bench: build
	@mkdir -p docs/plots $(dir $(BENCH_OUT))
	OPENBLAS_NUM_THREADS=$(THREADS) $(RELEASE) bench \
	  $(foreach p,$(BENCH_PRESETS),--preset $(p)) $(foreach m,$(BENCH_MODELS),--model $(m)) \
	  --contexts $(BENCH_CONTEXTS) --decode-tokens $(BENCH_DECODE) --repetitions $(BENCH_REPS) \
	  --max-seconds-per-point $(BENCH_POINT_S) --breakdown-contexts $(BENCH_BREAKDOWN) --threads $(THREADS) \
	  --save-all $(BENCH_OUT) --plot docs/plots \
	  --doc-template docs/scaling.template.md --doc docs/scaling.md $(BENCH_ARGS)

microbench: deps
	cd Benchmarks && THREADS=$(THREADS) OPENBLAS_NUM_THREADS=$(THREADS) $(SWIFT) package --disable-sandbox benchmark
