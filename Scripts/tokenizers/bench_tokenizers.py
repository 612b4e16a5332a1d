#!/usr/bin/env python3
"""Encode throughput of Orochi's tokenizers beside the reference libraries, in one run.

Orochi is timed by its release binary (`orochi tokenize --benchmark N`, which times the encode
loop only, after loading); sentencepiece and tokenizers by their Python bindings, single-threaded,
on the same lines. Also: one long line without spaces vs the same bytes as short lines.
"""
import argparse, os, re, statistics, subprocess, sys, time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
import sentencepiece as spm
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
FIXTURES = os.path.join(ROOT, "Tests/OrochiTests/Fixtures/tokenizers")
OUT = os.path.join(HERE, "..", "out")


def median_seconds(fn, repetitions):
    times = []
    for _ in range(repetitions):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def orochi_mb_per_s(binary, tokenizer, path, repetitions):
    out = subprocess.run([binary, "tokenize", "--tokenizer", tokenizer, "--file", path, "--benchmark", str(repetitions)],
                         check=True, capture_output=True, text=True).stdout
    return float(re.search(r"mb_per_s=([0-9.]+)", out).group(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/orochi"))
    parser.add_argument("--megabytes", type=float, default=3.0)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per variant")
    args = parser.parse_args()

    source = os.path.join(OUT, "train.txt")
    if not os.path.exists(source):
        sys.exit("Scripts/out/train.txt is missing: run `make tokenizer-fixtures` first")
    lines, size = [], 0
    with open(source, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            lines.append(line)
            size += len(line.encode()) + 1
            if size >= args.megabytes * 1e6:
                break
    short_path = os.path.join(OUT, "bench_lines.txt")
    with open(short_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    # ~1 MB without any space: the same text as short lines and as one line.
    nospace, total = [], 0
    for line in lines:
        piece = line.replace(" ", "").replace("\t", "")
        if piece:
            nospace.append(piece)
            total += len(piece.encode())
        if total >= 1e6:
            break
    nospace_lines = os.path.join(OUT, "bench_nospace_lines.txt")
    nospace_one = os.path.join(OUT, "bench_nospace_one_line.txt")
    with open(nospace_lines, "w", encoding="utf-8") as f:
        f.write("\n".join(nospace) + "\n")
    with open(nospace_one, "w", encoding="utf-8") as f:
        f.write("".join(nospace) + "\n")
    megabytes = size / 1e6
    print(f"text: {len(lines)} lines, {megabytes:.2f} MB of Japanese man pages; "
          f"median of {args.rounds} alternating rounds, each the median of {args.repetitions} runs")
    print()
    print("| variant | Orochi MB/s | reference MB/s | reference |")
    print("|---|---:|---:|---|")
    for variant in sorted(os.listdir(FIXTURES)):
        folder = os.path.join(FIXTURES, variant)
        if not os.path.isdir(folder) or not any(
                os.path.exists(os.path.join(folder, name)) for name in ("tokenizer.model", "tokenizer.json")):
            continue  # e.g. hf-unigram-precompiled, committed as a skeleton
        if os.path.exists(os.path.join(folder, "tokenizer.model")):
            file = os.path.join(folder, "tokenizer.model")
            sp = spm.SentencePieceProcessor(model_file=file)
            reference_run = lambda: sp.encode(lines, num_threads=1)
            reference = "sentencepiece (Python, C++ core, 1 thread)"
        else:
            file = os.path.join(folder, "tokenizer.json")
            tok = Tokenizer.from_file(file)
            reference_run = lambda: tok.encode_batch(lines, add_special_tokens=False)
            reference = "tokenizers (Python, Rust core, 1 thread)"
        # Alternate the two, round after round, so that a shared machine's load drifts onto both.
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(orochi_mb_per_s(args.binary, file, short_path, args.repetitions))
            theirs.append(megabytes / median_seconds(reference_run, args.repetitions))
        print(f"| {variant} | {statistics.median(ours):.2f} | {statistics.median(theirs):.2f} | {reference} |")
    print()
    print("One ~1 MB line without spaces vs the same bytes as short lines (MB/s):")
    print()
    print("| variant | Orochi short lines | Orochi one line | sentencepiece short lines | sentencepiece one line |")
    print("|---|---:|---:|---:|---:|")
    one_line_text = "".join(nospace)
    for variant in ["sp-unigram-nmt-nfkc", "sp-bpe-nmt-nfkc-bytes", "hf-bpe-metaspace-bytes", "hf-bpe-bytelevel"]:
        folder = os.path.join(FIXTURES, variant)
        file = os.path.join(folder, "tokenizer.model")
        sp = spm.SentencePieceProcessor(model_file=file) if os.path.exists(file) else None
        if sp is None:
            file = os.path.join(folder, "tokenizer.json")
        rows = {"short": [], "one": [], "sp short": [], "sp one": []}
        for _ in range(args.rounds):  # alternate, as above
            rows["short"].append(orochi_mb_per_s(args.binary, file, nospace_lines, args.repetitions))
            rows["one"].append(orochi_mb_per_s(args.binary, file, nospace_one, args.repetitions))
            if sp is not None:
                rows["sp short"].append(total / median_seconds(lambda: sp.encode(nospace, num_threads=1), args.repetitions) / 1e6)
                rows["sp one"].append(total / median_seconds(lambda: sp.encode(one_line_text), args.repetitions) / 1e6)
        cells = [f"{statistics.median(rows[k]):.2f}" if rows[k] else "" for k in ("short", "one", "sp short", "sp one")]
        print(f"| {variant} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
