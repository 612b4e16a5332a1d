#!/usr/bin/env bash
# Groups the artefacts of a fuzz target by what failed and where:
#   Fuzz/Scripts/triage.sh TARGET [FILES…]   (default: .build-fuzz/crashes/TARGET/*)
# prints "count | message | first frame in Sources/Orochi | example file".
set -uo pipefail
cd "$(dirname "$0")/../.."
t=${1:?target}; shift
b=$(sed -n "s/^    $t) echo \([A-Za-z]*\) ;;.*/\1/p; s/.* $t) echo \([A-Za-z]*\) ;;.*/\1/p" Fuzz/Scripts/fuzz.sh | head -1)
case $t in safetensors) b=FuzzSafetensors;; config-llama) b=FuzzConfigLlama;; config-mamba) b=FuzzConfigMamba;; config-jamba) b=FuzzConfigJamba;;
  sentencepiece) b=FuzzSentencePiece;; hf-tokenizer) b=FuzzHFTokenizer;; snapshot) b=FuzzSnapshot;; cli-parsers) b=FuzzCLIParsers;; esac
files=("$@"); [ ${#files[@]} = 0 ] && files=(.build-fuzz/crashes/"$t"/*)
for f in "${files[@]}"; do
  log=$(SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 timeout 120 Fuzz/.build/${FUZZ_CONFIG:-release}/$b -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 "$f" 2>&1)
  msg=$(grep -m1 -oE 'Precondition failed: .*|Fatal error: .*|ERROR: AddressSanitizer: [a-z-]+|ERROR: libFuzzer: [a-z-]+( in [^ ]+)?|Executed .*' <<<"$log" | sed -E 's/[0-9]+/N/g; s/Executed .*/no failure (fixed?)/' | cut -c1-110)
  frame=$(grep -oE 'in \$s6Orochi[^ ]* /[^ ]*/Sources/Orochi/[^ ]+' <<<"$log" | head -1 | sed -E 's/.* \/.*\/Sources\/Orochi\//Orochi\//')
  echo "$msg | ${frame:--} | $f"
done | sort | awk -F' \\| ' '{k=$1" | "$2; n[k]++; if (!(k in ex)) ex[k]=$3} END {for (k in n) printf "%4d | %s | %s\n", n[k], k, ex[k]}' | sort -rn
