#!/usr/bin/env bash
# (-Xswiftc rather than --sanitize=fuzzer: SwiftPM's --sanitize=fuzzer only links libFuzzer and
# leaves the code without coverage instrumentation.)
# Builds and runs Orochi's libFuzzer targets (issue 11). Called by mk/fuzz.mk:
#   fuzz.sh build                 sanitized build (libFuzzer + AddressSanitizer). FUZZ_CONFIG=release (default):
#                                 the release build users run (-O: bounds and overflow checks on where input is
#                                 parsed, the audited kernels -Ounchecked), 10-50x the executions per second of
#                                 a debug build; FUZZ_CONFIG=debug adds assert() checks.
#   fuzz.sh run SECONDS [SEED]    each target for SECONDS, one after another, stopping a target at its first
#                                 finding (with Fuzz/Regressions/<t> in the corpus: fails until they are fixed);
#                                 exit 1 if any found something
#   fuzz.sh long SECONDS [SEED]   the same in libFuzzer's fork mode, going on after crashes, timeouts and
#                                 OOMs to collect every finding in FUZZ_WORK/crashes/<t>/ (regressions left out)
#   fuzz.sh regressions           each target over Fuzz/Regressions/<target>/ once (exit 1 while any still fails)
# Environment: FUZZ_TARGETS (names, default all), FUZZ_CONFIG, FUZZ_RSS_MB, FUZZ_TIMEOUT, FUZZ_WORK, SWIFT, FUZZ_NICE,
# FUZZ_RUNS (with `long`: stop each target after this many executions instead of at the time limit).
# Committed seeds (Fuzz/Corpus/<t>) are copied into FUZZ_WORK/corpus/<t> and grow there; crashes,
# leaks, timeouts and OOMs go to FUZZ_WORK/crashes/<t>/, logs to FUZZ_WORK/logs/<t>.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SWIFT=${SWIFT:-swift}
WORK=${FUZZ_WORK:-$ROOT/.build-fuzz}
RSS=${FUZZ_RSS_MB:-2048}
TIMEOUT=${FUZZ_TIMEOUT:-10}
NICE=${FUZZ_NICE:-10}
ALL="safetensors config-llama config-mamba config-jamba sentencepiece hf-tokenizer snapshot cli-parsers chat-template gguf quant-blocks"
TARGETS=${FUZZ_TARGETS:-$ALL}
CONFIG=${FUZZ_CONFIG:-release}
BIN=$ROOT/Fuzz/.build/$CONFIG

binary() {
  case $1 in
    safetensors) echo FuzzSafetensors ;; config-llama) echo FuzzConfigLlama ;; config-mamba) echo FuzzConfigMamba ;; config-jamba) echo FuzzConfigJamba ;;
    sentencepiece) echo FuzzSentencePiece ;; hf-tokenizer) echo FuzzHFTokenizer ;; snapshot) echo FuzzSnapshot ;;
    cli-parsers) echo FuzzCLIParsers ;; chat-template) echo FuzzChatTemplate ;; gguf) echo FuzzGGUF ;;
    quant-blocks) echo FuzzQuantBlocks ;; *) echo "unknown fuzz target '$1' (known: $ALL)" >&2; exit 2 ;;
  esac
}

build() {
  (cd Fuzz && nice -n "$NICE" "$SWIFT" build -c "$CONFIG" -Xswiftc -enable-testing -Xswiftc -sanitize=fuzzer,address 2>&1 \
     | grep -v "Cannot export local symbol") || exit 1
  test -x "$BIN/FuzzSafetensors" || { echo "fuzz build failed" >&2; exit 1; }
}

run() {
  local seconds=$1 seed=${2:-0} mode=${3:-stop} runs_cap=${4:-} failed=""
  mkdir -p "$WORK"
  printf "%-14s %12s %10s %8s %s\n" target executions exec/s corpus result
  for t in $TARGETS; do
    local b; b=$(binary "$t") || exit 2
    mkdir -p "$WORK/corpus/$t" "$WORK/crashes/$t" "$WORK/logs"
    local dirs=("$WORK/corpus/$t" "Fuzz/Corpus/$t")
    [ "$mode" = stop ] && [ -d "Fuzz/Regressions/$t" ] && dirs+=("Fuzz/Regressions/$t")
    local fork=(); [ "$mode" = fork ] && fork=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    # A run count with a fixed seed makes the inputs the same on every machine (CI), whatever its speed.
    local cap=(); [ -n "$runs_cap" ] && cap=(-runs="$runs_cap")
    local before; before=$(ls "$WORK/crashes/$t" 2>/dev/null | wc -l)
    local dict=(); [ -f "Fuzz/Dictionaries/$t.dict" ] && dict=(-dict="Fuzz/Dictionaries/$t.dict")
    local log="$WORK/logs/$t.log"
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} nice -n "$NICE" "$BIN/$b" "${dirs[@]}" "${dict[@]}" "${fork[@]}" \
      "${cap[@]}" -max_total_time="$seconds" -seed="$seed" -rss_limit_mb="$RSS" -malloc_limit_mb="$RSS" -timeout="$TIMEOUT" \
      -artifact_prefix="$WORK/crashes/$t/" -print_final_stats=1 -close_fd_mask=3 > "$log" 2>&1
    local rc=$?
    local runs rate size found
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    if [ "$mode" = fork ]; then   # fork mode: "#N: cov: … exec/s: R … oom/timeout/crash: a/b/c"
      runs=$(grep -oE '^#[0-9]+:' "$log" | tail -1 | tr -d '#:')
      rate=$(grep -oE 'exec/s: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    fi
    size=$(ls "$WORK/corpus/$t" | wc -l)
    found=$(( $(ls "$WORK/crashes/$t" | wc -l) - before ))
    local result=ok
    if [ "$mode" = fork ] && [ "$found" -gt 0 ]; then
      result="FOUND $found new artefact(s) in $WORK/crashes/$t ($(grep -oE 'oom/timeout/crash: [0-9/]+' "$log" | tail -1))"
      failed="$failed $t"
    elif [ $rc != 0 ]; then
      result="FOUND ($(grep -m1 -oE 'Precondition failed: .*|ERROR: (libFuzzer|AddressSanitizer): [a-z-]+|Fatal error: .*|deadly signal|timeout after [0-9]+ seconds|out-of-memory \(.*\)' "$log" | head -c 100)) -> $(ls -t "$WORK/crashes/$t" | head -1)"
      failed="$failed $t"
    fi
    printf "%-14s %12s %10s %8s %s\n" "$t" "${runs:-?}" "${rate:-?}" "$size" "$result"
  done
  if [ -n "$failed" ]; then echo "findings in:$failed (artefacts under $WORK/crashes, logs under $WORK/logs)"; exit 1; fi
}

regressions() {
  local failed=""
  for t in $TARGETS; do
    [ -d "Fuzz/Regressions/$t" ] || continue
    local b; b=$(binary "$t") || exit 2
    for f in Fuzz/Regressions/"$t"/*; do
      [ -f "$f" ] || continue
      if SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} timeout 120 "$BIN/$b" -rss_limit_mb="$RSS" -malloc_limit_mb="$RSS" -timeout="$TIMEOUT" "$f" > "$WORK.regression.log" 2>&1; then
        echo "fixed   $f"
      else
        echo "FAILS   $f: $(grep -m1 -oE 'Precondition failed: .*|ERROR: (libFuzzer|AddressSanitizer): [a-z-]+|Fatal error: .*|deadly signal|timeout after [0-9]+ seconds|out-of-memory \(.*\)' "$WORK.regression.log" | head -c 120)"
        failed="$failed $f"
      fi
    done
  done
  rm -f "$WORK.regression.log"
  [ -z "$failed" ]
}

case ${1:-} in
  build) build ;;
  run) run "${2:?seconds}" "${3:-0}" stop "${4:-}" ;;
  long) run "${2:?seconds}" "${3:-0}" fork "${FUZZ_RUNS:-}" ;;
  regressions) regressions ;;
  *) echo "usage: $0 build | run SECONDS [SEED [RUNS]] | long SECONDS [SEED] | regressions" >&2; exit 2 ;;
esac
