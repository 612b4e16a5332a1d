# Hardening (issue 11): fuzzing, hostile inputs against the release binary, sanitized tests.
# See docs/hardening.md.
#   make fuzz              every libFuzzer target (Fuzz/, a separate package) for FUZZ_SECONDS each
#                          (or FUZZ_RUNS executions each, e.g. FUZZ_RUNS=10000000 FUZZ_SECONDS=100000)
#   make fuzz-smoke        sanitized build + each target for FUZZ_SMOKE_RUNS runs from seed 1; fails on any finding (CI)
#   make fuzz-regressions  replays Fuzz/Regressions/<target>/ (minimized past findings)
#   make hostile           ≥ 2,000 malformed files and command lines against .build/release/orochi
#   make test-sanitized    the test suite under AddressSanitizer, then in a checked build (see below)
# Work folders (.build-fuzz, .build-hostile, .build-sanitized*) are git-ignored (.build*/).

FUZZ_SECONDS       ?= 600
FUZZ_SMOKE_SECONDS ?= 60
# Runs per target in fuzz-smoke (the same inputs everywhere; the seconds above only cap a slow machine).
FUZZ_SMOKE_RUNS ?= 10000
FUZZ_TARGETS       ?= safetensors config-llama config-mamba config-jamba sentencepiece hf-tokenizer snapshot cli-parsers chat-template gguf quant-blocks
FUZZ_RSS_MB        ?= 2048
FUZZ_TIMEOUT       ?= 10
HOSTILE_SEED       ?= 1
HOSTILE_ARGS       ?=
SANITIZERS         ?= address checked

.PHONY: fuzz fuzz-build fuzz-smoke fuzz-regressions hostile test-sanitized

FUZZ_CONFIG        ?= release
FUZZ_RUNS          ?=
FUZZ_ENV = FUZZ_CONFIG=$(FUZZ_CONFIG) FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_TARGETS="$(FUZZ_TARGETS)" FUZZ_RSS_MB=$(FUZZ_RSS_MB) FUZZ_TIMEOUT=$(FUZZ_TIMEOUT) SWIFT=$(SWIFT)

fuzz-build: deps
	$(FUZZ_ENV) Fuzz/Scripts/fuzz.sh build

# Fork mode: goes on after a finding, collecting every crash / timeout / OOM.
fuzz: fuzz-build
	$(FUZZ_ENV) Fuzz/Scripts/fuzz.sh long $(FUZZ_SECONDS)

# Fixed seed and a fixed number of runs: the same inputs on every machine, so CI is reproducible
# (FUZZ_SMOKE_SECONDS only caps a slow machine).
fuzz-smoke: fuzz-build
	$(FUZZ_ENV) Fuzz/Scripts/fuzz.sh run $(FUZZ_SMOKE_SECONDS) 1 $(FUZZ_SMOKE_RUNS)

fuzz-regressions: fuzz-build
	$(FUZZ_ENV) Fuzz/Scripts/fuzz.sh regressions

hostile: build
	python3 Scripts/hostile/hostile.py --binary $(RELEASE) --seed $(HOSTILE_SEED) $(HOSTILE_ARGS)

# Swift has no UndefinedBehaviorSanitizer on Linux (`-sanitize=undefined` is refused for Swift
# code): its stand-in is "checked", the release build with -O instead of -Ounchecked, where every
# bounds and overflow check traps (the undefined behaviour of -Ounchecked becomes a crash).
# Each one in its own scratch path, so neither clobbers the normal .build. AddressSanitizer
# is built recoverable (-sanitize-recover=address, halt_on_error=0) so that one run lists every
# report; the target fails when the log holds any sanitizer report or the tests fail.
# Logs: .build-sanitized-<name>/test.log.
test-sanitized: deps
	@for s in $(SANITIZERS); do \
	  echo "== swift test ($$s, log: .build-sanitized-$$s/test.log)"; \
	  mkdir -p .build-sanitized-$$s; case $$s in address) flags="--sanitize=address -Xswiftc -sanitize-recover=address" ;; checked) flags="-Xswiftc -O" ;; *) flags="--sanitize=$$s" ;; esac; \
	  ASAN_OPTIONS=halt_on_error=0:detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 SWIFT_BACKTRACE=enable=no \
	    $(SWIFT) test -c release -Xswiftc -enable-testing --no-parallel $$flags \
	    --scratch-path .build-sanitized-$$s > .build-sanitized-$$s/test.log 2>&1; rc=$$?; \
	  tail -n 3 .build-sanitized-$$s/test.log; \
	  n=$$(grep -cE "ERROR: AddressSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer" .build-sanitized-$$s/test.log); \
	  echo "   exit $$rc, $$n sanitizer report(s)"; \
	  grep -E "SUMMARY: AddressSanitizer|runtime error:" .build-sanitized-$$s/test.log | sed -E "s/ in .*//" | sort | uniq -c | head -20; \
	  [ $$rc = 0 ] && [ $$n = 0 ] || exit 1; \
	done
