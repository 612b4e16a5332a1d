#!/usr/bin/env python3
"""Paired, interleaved A/B runs of two or more builds of `orochi` on one model.

Every "+x %" in a commit message about speed comes from runs like these: on a shared machine whose
speed moves by ±40 % within minutes, two builds are only comparable when they run back to back,
in alternating order, many times, and the ratio is taken pair by pair. This script does that with
`orochi bench --format json` (one process per run) and prints, for each build after the first,
the median and range of its per-pair ratios to the first build for prefill and decode tok/s.

    python3 Scripts/peer/ab_builds.py --model build/peer/models/mamba-6m/f32 --contexts 16 \\
        --decode-tokens 512 --pairs 20 /tmp/orochi-before .build/release/orochi

Keep a copy of the first build (cp .build/release/orochi /tmp/orochi-before) before rebuilding.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def run(binary, a, env):
    """One `orochi bench` process: (prefill tok/s, decode tok/s) of its single point."""
    cmd = [binary, "bench", *(["--preset", a.preset] if a.preset else ["--model", a.model]), "--contexts", str(a.contexts), "--decode-tokens", str(a.decode_tokens),
           "--repetitions", str(a.repetitions), "--threads", str(a.threads), "--no-bandwidth",
           "--breakdown-contexts", "none", "--format", "json"] + (["--kernels", a.kernels] if a.kernels else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"ab_builds: {' '.join(cmd)} failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    point = json.loads(out.stdout)["results"]["points"][0]
    return point["prefillTokensPerSecond"], point["decodeTokensPerSecond"]


def spread(values):
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("builds", nargs="+", help="orochi binaries; the first is the reference")
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a model directory")
    source.add_argument("--preset", help="an orochi bench preset (random weights of a published shape)")
    ap.add_argument("--contexts", type=int, default=512, help="prefill length, and the decode depth (default 512)")
    ap.add_argument("--decode-tokens", type=int, default=32, help="decode steps per run (default 32)")
    ap.add_argument("--repetitions", type=int, default=3, help="orochi bench repetitions per run (default 3)")
    ap.add_argument("--pairs", type=int, default=10, help="rounds; each runs every build once (default 10)")
    ap.add_argument("--threads", type=int, default=2, help="threads for both Orochi and OpenBLAS (default 2)")
    ap.add_argument("--kernels", help="orochi bench --kernels: a lower kernel family than the CPU's (avx2, portable)")
    a = ap.parse_args()
    if len(a.builds) < 2:
        sys.exit("ab_builds: give at least two builds")
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(a.threads))
    prefill = {b: [] for b in a.builds}
    decode = {b: [] for b in a.builds}
    for i in range(a.pairs):
        for b in (a.builds if i % 2 == 0 else a.builds[::-1]):       # the order alternates between rounds
            p, d = run(b, a, env)
            prefill[b].append(p)
            decode[b].append(d)
        print(f"round {i + 1}/{a.pairs} done", file=sys.stderr)
    print(f"{a.model or a.preset}, n = {a.contexts}, {a.pairs} rounds; tok/s medians, then paired ratios to {a.builds[0]}")
    for b in a.builds:
        print(f"  {b}: prefill {statistics.median(prefill[b]):,.0f}, decode {statistics.median(decode[b]):,.1f}")
    ref = a.builds[0]
    for b in a.builds[1:]:
        rp = [y / x for x, y in zip(prefill[ref], prefill[b])]
        rd = [y / x for x, y in zip(decode[ref], decode[b])]
        print(f"  {b} / {ref}: prefill {spread(rp)}, decode {spread(rd)}")


if __name__ == "__main__":
    main()
