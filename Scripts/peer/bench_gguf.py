#!/usr/bin/env python3
"""Orochi against llama.cpp on the same GGUF files, in one run: `make bench-peer-gguf`.

For each file and round (the engines' order alternating by round):
  Orochi     orochi bench --model FILE --contexts 512 --decode-tokens 32: prefill of 512 tokens from an
             empty cache, then 32 tokens decoded at depth 512
  llama.cpp  llama-bench -m FILE -p 512 -n 0 (pp512), and -p 0 -n 32 -d 512 (tg32 at depth 512)
Medians over the rounds, and their ratios, go into docs/gguf.md between the markers
<!-- gguf-table:begin --> and <!-- gguf-table:end -->; every sample into docs/bench/peer/gguf.json.
Goals (issue 29): prefill ≥ 1.5×, decode ≥ 1.3× llama.cpp's, per file.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import tempfile
from pathlib import Path

PP, GEN, DEPTH = 512, 32, 512
BEGIN, END = "<!-- gguf-table:begin -->", "<!-- gguf-table:end -->"


def run(cmd, env=None, timeout=900):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return p


def orochi(a, path):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        run([a.orochi, "bench", "--model", str(path), "--contexts", str(PP), "--decode-tokens", str(GEN),
             "--repetitions", "1", "--threads", str(a.threads), "--breakdown-contexts", "none",
             "--format", "json", "--out", out], env=dict(os.environ, OMP_NUM_THREADS=str(a.threads)))
        point = next(p for p in json.loads(Path(out).read_text())["results"]["points"] if not p.get("skipped"))
    finally:
        os.unlink(out)
    return {"prefill": point["prefillTokensPerSecond"], "decode": point["decodeTokensPerSecond"]}


def llama(a, path):
    result = {}
    for metric, args in [("prefill", ["-p", str(PP), "-n", "0"]), ("decode", ["-p", "0", "-n", str(GEN), "-d", str(DEPTH)])]:
        p = run([a.llama_bench, "-m", str(path), "-t", str(a.threads), "-r", "1", "-o", "json"] + args)
        result[metric] = json.loads(p.stdout)[0]["avg_ts"]
    return result


def render(samples, files, a):
    def med(f, engine, metric):
        return statistics.median(s[metric] for s in samples if s["file"] == f.name and s["engine"] == engine)

    goals = a.made_by == "make bench-peer-gguf"                  # issue 29's goals are for its own files
    rows = [f"| file | size | Orochi prefill 512 | llama.cpp pp512 | ratio{' (goal 1.5×)' if goals else ''} | Orochi decode at 512 | llama.cpp tg32 d512 | ratio{' (goal 1.3×)' if goals else ''} |",
            "|---|---|---|---|---|---|---|---|"]
    for f in files:
        op, lp, od, ld = med(f, "orochi", "prefill"), med(f, "llama.cpp", "prefill"), med(f, "orochi", "decode"), med(f, "llama.cpp", "decode")
        rows.append(f"| {f.name} | {f.stat().st_size / 1e6:.0f} MB | {op:.0f} | {lp:.0f} | {op / lp:.2f}× | {od:.1f} | {ld:.1f} | {od / ld:.2f}× |")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "?")
    head = (f"Measured {when} by `{a.made_by}` (Scripts/peer/bench_gguf.py) on {cpu}, {a.threads} threads, "
            f"medians of {a.rounds} rounds, both engines in the same run; tokens/s.")
    return "\n".join([BEGIN, head, "", *rows, END])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orochi", default=".build/release/orochi")
    ap.add_argument("--llama-bench", default="build/peer/llama.cpp-build/bin/llama-bench")
    ap.add_argument("--files", nargs="+", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("docs/bench/peer/gguf.json"))
    ap.add_argument("--doc", type=Path, default=Path("docs/gguf.md"))
    ap.add_argument("--made-by", default="make bench-peer-gguf", help="the command named in the table's heading")
    a = ap.parse_args()
    samples = []
    for rnd in range(a.rounds):
        for f in a.files:
            engines = [("orochi", orochi), ("llama.cpp", llama)]
            for name, measure in (engines if rnd % 2 == 0 else engines[::-1]):
                r = measure(a, f)
                samples.append({"file": f.name, "engine": name, "round": rnd, "load": os.getloadavg()[0], **r})
                print(f"round {rnd + 1} {f.name} {name:9} prefill {r['prefill']:.0f} decode {r['decode']:.1f}", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"host": platform.platform(), "threads": a.threads, "samples": samples}, indent=1) + "\n")
    table = render(samples, a.files, a)
    print(table)
    doc = a.doc.read_text()
    if BEGIN in doc and END in doc:
        doc = doc[:doc.index(BEGIN)] + table + doc[doc.index(END) + len(END):]
    else:
        doc += "\n## Quantized GGUF files against llama.cpp\n\n" + table + "\n"
    a.doc.write_text(doc)


if __name__ == "__main__":
    main()
