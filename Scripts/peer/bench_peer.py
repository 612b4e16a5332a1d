#!/usr/bin/env python3
"""Orochi against llama.cpp in the same run (issue 10's yardstick). Python standard library only.

For each shape (llama-6m, mamba-6m, llama-130m, mamba-130m; checkpoints made by
make_checkpoints.py) and each round, point by point (decode depth 0 with pp512, depth 512,
depth 4,096), it runs one after the other:
  - orochi, f32 safetensors, with OPENBLAS_CORETYPE removed from the environment ("unset")
  - orochi, f32, with OPENBLAS_CORETYPE=Prescott (OpenBLAS's SSE3 kernels)
  - llama-bench, f32 GGUF (llama.cpp does not use OpenBLAS)
  - at the f16 depths: orochi on the f16 safetensors (both environments) and llama-bench on the f16 GGUF
alternating which engine goes first from round to round, and takes medians over the rounds.
Writes the raw samples (JSON and CSV) and a Markdown report (docs/performance.md).

  python3 Scripts/peer/bench_peer.py --orochi .build/release/orochi --llama-bench build/peer/llama.cpp-build/bin/llama-bench \
      --models build/peer/models --shapes "6m 130m" --out-dir docs/bench/peer --doc docs/performance.md
  python3 Scripts/peer/bench_peer.py --replay docs/bench/peer/results.json --doc docs/performance.md   # re-render only
"""

import argparse
import csv
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = ["llama-6m", "mamba-6m", "llama-130m", "mamba-130m"]
SHAPE_TEXT = {
    "llama-6m": "Llama, hidden 256, 6 layers, 8 heads / 4 KV, MLP 688, vocab 8,000, tied",
    "mamba-6m": "Mamba, hidden 256, 10 layers, state 16, expand 2, conv 4, vocab 8,000, tied",
    "llama-130m": "Llama, hidden 768, 12 layers, 12 heads, MLP 2048, vocab 32,000, tied",
    "mamba-130m": "Mamba, hidden 768, 24 layers, state 16, expand 2, conv 4, vocab 32,000, tied",
}
# Issue 10's goals: Orochi / llama.cpp at least this, for prefill (pp512) and decode (every depth).
GOALS = {
    "llama-6m": {"prefill": 1.5, "decode": 2.0},
    "mamba-6m": {"prefill": 3.0, "decode": 3.0},
    "llama-130m": {"prefill": 1.5, "decode": 1.3},
    "mamba-130m": {"prefill": 3.0, "decode": 1.3},
}
F16_GOAL = 1.8
# Shapes whose decode must also reach this fraction of the bandwidth Orochi measures (issue 10).
ROOFLINE_GOAL = {"llama-130m": 0.9}
# Above this median 1-minute load average (2 cores) a shape's goals are reported but not judged.
BUSY_LOAD = 2.5
ENVS = {"unset": None, "Prescott": "Prescott"}   # OPENBLAS_CORETYPE for the orochi runs
PP = 512
GEN = 32


def shapes_for(spec):
    names = []
    for word in spec.replace(",", " ").split():
        matched = [n for n in SHAPES if n == word or n.endswith("-" + word)]
        if not matched:
            sys.exit(f"unknown shape '{word}' (known: 6m, 130m, {', '.join(SHAPES)})")
        names += [n for n in matched if n not in names]
    return names


def loadavg():
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return None


def orochi_env(coretype, threads):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    return env


def layer_products(config):
    """A shape's products of PP tokens per layer, (N, K) of X[PP, K]·W[N, K]ᵀ, from its config.json."""
    d = config["hidden_size"]
    if "state_size" in config:                       # Mamba: in_proj, x_proj, dt_proj, out_proj
        e = config.get("intermediate_size") or config.get("expand", 2) * d
        r = config.get("time_step_rank") or -(-d // 16)
        return [(2 * e, d), (r + 2 * config["state_size"], e), (e, r), (d, e)]
    heads, kv = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    hd = config.get("head_dim") or d // heads
    i = config["intermediate_size"]
    return [(heads * hd, d), (kv * hd, d), (kv * hd, d), (d, heads * hd), (i, d), (i, d), (d, i)]


def bytes_per_token(orochi, model):
    """`orochi inspect`'s bytes read per decoded token (weights; at depth 0 for Llama)."""
    p = subprocess.run([orochi, "inspect", "--model", str(model)], capture_output=True, text=True)
    m = re.search(r"^bytes read per decoded token\s+(\d+)", p.stdout, re.M)
    return int(m.group(1)) if m else None


def ceiling_shapes(a):
    """Per shape, what its ceilings are computed from: layer products, layer count, bytes per
    decoded token, and the scan's size for Mamba."""
    shapes = {}
    for shape in a.shapes:
        model = a.models / shape / "f32"
        config = json.loads((model / "config.json").read_text())
        shapes[shape] = dict(products=layer_products(config), layers=config["num_hidden_layers"],
                             bytes=bytes_per_token(a.orochi, model),
                             scan=("state_size" in config) and dict(
                                 channels=config.get("intermediate_size") or 2 * config["hidden_size"], state=config["state_size"]))
    return shapes


def measure_ceilings(a, shapes):
    """Runs the ceilings program once (under the same nice as the engines) at the shapes' layer
    products and weight sizes (`ceiling_shapes`); returns its JSON with the shapes, or None."""
    if not a.ceilings or not Path(a.ceilings).exists():
        return None
    products = sorted({(n, k) for v in shapes.values() for n, k in v["products"]})
    sets = sorted({round(v["bytes"] / 1e6, 1) for v in shapes.values() if v["bytes"]})
    cmd = [str(a.ceilings), "--json", "--threads", str(a.threads), "--gemm", ",".join(f"{PP}x{n}x{k}" for n, k in products)]
    if sets:
        cmd += ["--cycle", ",".join(f"{x:g}" for x in sets)]
    if a.nice:
        cmd = ["nice", "-n", str(a.nice)] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(f"ceilings failed ({p.returncode}): {p.stderr[-1000:]}", file=sys.stderr)
        return None
    out = json.loads(p.stdout)
    out["shapes"] = shapes
    out["command"] = " ".join(cmd)
    return out


def best_of(first, second):
    """The ceilings measured before and after the engines, figure by figure the better of the two:
    a shared machine's bandwidth and clock move during a run, and a ceiling is what it allowed."""
    if not first or not second:
        return first or second
    best = dict(first)
    best["fma_one_core"] = max(first["fma_one_core"], second["fma_one_core"])
    best["fma_all"] = max(first["fma_all"], second["fma_all"])
    later = {(g["n"], g["k"]): g["flops"] for g in second["sgemm"]}
    best["sgemm"] = [dict(g, flops=max(g["flops"], later.get((g["n"], g["k"]), 0))) for g in first["sgemm"]]
    later = {c["megabytes"]: c["bytes_per_second"] for c in second["cycle"]}
    best["cycle"] = [dict(c, bytes_per_second=max(c["bytes_per_second"], later.get(c["megabytes"], 0))) for c in first["cycle"]]
    best["scan_ns_per_update"] = {k: min(v, second["scan_ns_per_update"].get(k, v)) for k, v in first["scan_ns_per_update"].items()}
    best["measured"] = "before and after the engines, the better of the two"
    return best


def ceilings_for(res, shape):
    """The ceilings a shape's bounds come from: this run's, or, for a shape kept by --append, the
    ceilings of the run that measured it."""
    if shape in (res.get("ceilings") or {}).get("shapes", {}):
        return res["ceilings"]
    return res.get("ceilings_kept", {}).get(shape)


def bounds(ceilings, shape):
    """Upper bounds from the ceilings for one shape: pp512 tok/s with the layers' products at the
    measured rates of the kernels Orochi runs for them (plus the scan for Mamba) and nothing else; decode tok/s at depth 0 with its
    bytes per token read at the measured cycling bandwidth and nothing else."""
    if not ceilings or shape not in ceilings.get("shapes", {}):
        return None, None
    sh = ceilings["shapes"][shape]
    rates = {(g["n"], g["k"]): g["flops"] for g in ceilings["sgemm"]}
    seconds = 0.0
    for n, k in sh["products"]:
        if (n, k) not in rates:
            return None, None
        seconds += 2.0 * PP * n * k / rates[(n, k)]
    seconds *= sh["layers"]
    if sh.get("scan"):
        seconds += sh["layers"] * PP * sh["scan"]["channels"] * sh["scan"]["state"] * ceilings["scan_ns_per_update"]["prefill512"] * 1e-9
    prefill = PP / seconds if seconds > 0 else None
    decode = None
    if sh.get("bytes"):
        cyc = {round(c["megabytes"], 1): c["bytes_per_second"] for c in ceilings["cycle"]}
        bw = cyc.get(round(sh["bytes"] / 1e6, 1))
        decode = bw / sh["bytes"] if bw else None
    return prefill, decode


class Runner:
    def __init__(self, args):
        self.args = args
        self.samples = []      # one dict per measured value
        self.log = []          # commands run
        self.notes = {}        # bandwidth lines etc.
        self.t0 = time.monotonic()

    def say(self, text):
        print(f"[{time.monotonic() - self.t0:6.0f} s] {text}", file=sys.stderr, flush=True)

    def niced(self, cmd):
        """Both engines under the same `nice -n N` (a negative N gives the measurements priority over
        other work on a shared machine; it needs root)."""
        return ["nice", "-n", str(self.args.nice)] + list(cmd) if self.args.nice else list(cmd)

    def call(self, cmd, env=None):
        """Runs one engine; a run past --timeout counts as a failure (returncode 124)."""
        try:
            return subprocess.run(self.niced(cmd), env=env, capture_output=True, text=True, timeout=self.args.timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(cmd, 124, "", f"timed out after {self.args.timeout} s")

    def record(self, **kw):
        self.samples.append(kw)

    def run_orochi(self, shape, dtype, envname, context, rnd):
        a = self.args
        model = a.models / shape / dtype
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            out = f.name
        cmd = [a.orochi, "bench", "--model", str(model), "--contexts", str(context), "--decode-tokens", str(GEN),
               "--repetitions", str(a.orochi_reps), "--threads", str(a.threads), "--breakdown-contexts", "none",
               "--format", "json", "--out", out]
        load = loadavg()
        p = self.call(cmd, env=orochi_env(ENVS[envname], a.threads))
        self.log.append(("orochi", envname, cmd))
        if p.returncode != 0:
            self.say(f"orochi failed ({p.returncode}): {p.stderr[-2000:]}")
            os.unlink(out)
            return
        for line in p.stderr.splitlines():
            if "bandwidth" in line.lower():
                self.notes.setdefault(f"bandwidth {envname}", line.strip())
        doc = json.loads(Path(out).read_text())
        os.unlink(out)
        self.find_bandwidth(doc, envname)
        # The read bandwidth this process measured just before its own runs: the roofline of its decode
        # at that moment (the machine's bandwidth moves by 2x within minutes).
        bw = doc["results"].get("machine", {}).get("readBandwidth")
        for pt in doc["results"]["points"]:
            if pt.get("skipped"):
                self.say(f"orochi {shape} n={context}: skipped: {pt['skipped']}")
                continue
            common = dict(shape=shape, engine="orochi", dtype=dtype, env=envname, round=rnd, load=load,
                          load_end=pt.get("loadAverage"), bw=bw)
            depth = 0 if context == 1 else context
            self.record(metric="decode", depth=depth, tps=pt["decodeTokensPerSecond"], **common)
            if context == PP:
                self.record(metric="prefill", depth=0, tps=pt["prefillTokensPerSecond"], **common)
            elif context > 1:
                self.record(metric=f"prefill{context}", depth=0, tps=pt["prefillTokensPerSecond"], **common)
            self.say(f"orochi {shape} {dtype} {envname:8} n={context}: prefill {pt['prefillTokensPerSecond']:.0f} tok/s, "
                     f"decode {pt['decodeTokensPerSecond']:.1f} tok/s (load {load})")

    def find_bandwidth(self, doc, envname):
        def walk(x, path=""):
            if isinstance(x, dict):
                for k, v in x.items():
                    if "bandwidth" in k.lower() and isinstance(v, (int, float)):
                        self.notes.setdefault(f"bandwidth {envname}", f"{path}{k} = {v}")
                    walk(v, f"{path}{k}.")
            elif isinstance(x, list):
                for v in x:
                    walk(v, path)
        walk(doc)

    def run_llama(self, shape, dtype, pp, depth, rnd):
        a = self.args
        model = a.models / f"{shape}-{dtype}.gguf"
        cmd = [a.llama_bench, "-m", str(model), "-t", str(a.threads), "-p", str(pp), "-n", str(GEN),
               "-d", str(depth), "-r", str(a.llama_reps), "-o", "json"] + shlex.split(a.llama_args)
        load = loadavg()
        p = self.call(cmd)
        self.log.append(("llama.cpp", "", cmd))
        if p.returncode != 0:
            self.say(f"llama-bench failed ({p.returncode}): {p.stderr[-2000:]}")
            return
        for t in json.loads(p.stdout):
            metric = "prefill" if t["n_prompt"] > 0 else "decode"
            self.record(shape=shape, engine="llama.cpp", dtype=dtype, env="", round=rnd, load=load, load_end=loadavg(),
                        metric=metric, depth=t["n_depth"], tps=t["avg_ts"])
            self.say(f"llama.cpp {shape} {dtype} {metric} d={t['n_depth']}: {t['avg_ts']:.1f} tok/s (load {load})")

    def point(self, shape, depth, rnd):
        """One point: orochi (both environments) and llama-bench, order alternating by round."""
        a = self.args
        context = max(depth, 1)
        if depth == 0:
            # pp512 comes with the depth-0 point: orochi's 512-token prefill (which also gives decode at
            # depth 512 when 512 is not among the depths), llama-bench's -p 512.
            context_runs = [1, PP] if PP not in a.depths else [1]
        else:
            context_runs = [context]
        f16 = depth in a.f16_depths

        def orochi():
            for envname in a.envs:
                for c in context_runs:
                    self.run_orochi(shape, "f32", envname, c, rnd)
                if f16:
                    self.run_orochi(shape, "f16", envname, context, rnd)

        def llama():
            self.run_llama(shape, "f32", PP if depth == 0 else 0, depth, rnd)
            if f16:
                self.run_llama(shape, "f16", 0, depth, rnd)

        for step in ((orochi, llama) if rnd % 2 == 0 else (llama, orochi)):
            step()

    def run(self):
        a = self.args
        for shape in a.shapes:
            for depth in a.depths:
                rounds = a.rounds_4096 if depth >= 4096 else a.rounds
                start = time.monotonic()
                for rnd in range(rounds):
                    spent = time.monotonic() - start
                    # At least one round; then stop before a round that would pass the point's budget.
                    if rnd > 0 and a.max_point_seconds and spent + spent / rnd > a.max_point_seconds:
                        self.say(f"== {shape} depth {depth}: {rnd} round(s) in {spent:.0f} s, "
                                 f"stopping (--max-point-seconds {a.max_point_seconds:.0f})")
                        break
                    self.say(f"== {shape} depth {depth} round {rnd + 1}/{rounds}")
                    self.point(shape, depth, rnd)


def machine_info(orochi, models, shapes):
    info = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "host_os": platform.platform()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        lscpu = ""
    fields = dict(re.findall(r"^([^:\n]+):\s*(.*)$", lscpu, re.M))
    info["cpu"] = fields.get("Model name", platform.processor() or "unknown")
    info["cpus"] = fields.get("CPU(s)", str(os.cpu_count()))
    info["caches"] = ", ".join(f"{k.split()[0]} {fields[k]}" for k in ("L1d cache", "L2 cache", "L3 cache") if k in fields)
    flags = set(fields.get("Flags", "").split())
    wanted = ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
              "avx_vnni", "amx_tile", "amx_bf16", "amx_int8"]
    info["flags"] = " ".join(f for f in wanted if f in flags) or "none of " + " ".join(wanted)
    info["no_flags"] = " ".join(f for f in wanted if f not in flags)
    info["env"] = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS")}
    # Which OpenBLAS kernels Orochi ran with, under each environment.
    info["blas_core"] = {}
    model = next((models / s / "f32" for s in shapes if (models / s / "f32").exists()), None)
    for envname, core in ENVS.items():
        env = orochi_env(core, 2)
        found = None
        if model is not None:
            p = subprocess.run([orochi, "inspect", "--model", str(model)], env=env, capture_output=True, text=True)
            for line in (p.stdout + p.stderr).splitlines():
                if line.lower().startswith("blas core"):
                    found = line.split(":", 1)[1].strip() + " (orochi inspect)"
                elif line.startswith("blas ") and "OpenBLAS core " in line:      # inspect's "blas   OpenBLAS core X (why)"
                    found = line.split("OpenBLAS core ", 1)[1].strip() + " (orochi inspect)"
        if found is None:
            lib = "libopenblas.so.0"
            ldd = subprocess.run(["ldd", orochi], capture_output=True, text=True).stdout
            m = re.search(r"(libopenblas\S*)\s+=>\s+(\S+)", ldd)
            if m:
                lib = m.group(2)
            code = ("import ctypes,sys; l=ctypes.CDLL(sys.argv[1]); l.openblas_get_corename.restype=ctypes.c_char_p; "
                    "print(l.openblas_get_corename().decode())")
            p = subprocess.run([sys.executable, "-c", code, lib], env=env, capture_output=True, text=True)
            found = (p.stdout.strip() + f" (openblas_get_corename of {lib})") if p.returncode == 0 else "unknown"
        info["blas_core"][envname] = found
    return info


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def matching(samples, **kw):
    """The samples whose fields equal every keyword given."""
    return [s for s in samples if all(s.get(k) == v for k, v in kw.items())]


def value(samples, **kw):
    return median([s["tps"] for s in matching(samples, **kw)])


def fmt(x, digits=None):
    if x is None:
        return "—"
    if digits is None:
        digits = 0 if x >= 100 else 1 if x >= 10 else 2
    return f"{x:,.{digits}f}"


def ratio(a, b):
    return a / b if a is not None and b else None


def fr(r):
    return "—" if r is None else f"{r:.2f}×"


def round_spread(samples, num, den):
    """' (1.31–2.02)': the lowest and highest of the per-round ratios num/den, each taken between two
    runs of the same round (a minute apart at most), where at least 3 rounds have both; else ''.
    On these shared machines the spread says how far a median ratio can be trusted."""
    a = {x["round"]: x["tps"] for x in matching(samples, **num)}
    b = {x["round"]: x["tps"] for x in matching(samples, **den)}
    rs = [a[r] / b[r] for r in a if r in b and b[r]]
    return f" ({min(rs):.2f}–{max(rs):.2f})" if len(rs) >= 3 else ""


def process_bandwidths(res, env):
    """The read bandwidth (bytes/s) each Orochi process under `env` measured before its runs."""
    return [s["bw"] for s in res.get("samples", []) if s.get("engine") == "orochi" and s.get("env") == env and s.get("bw")]


def measured_bandwidth(res, env):
    """Orochi's read-bandwidth figure (bytes/s) under `env`: the median of the figures each of its
    processes measured, or, for results recorded before those, the first one noted."""
    bws = process_bandwidths(res, env)
    if bws:
        return statistics.median(bws)
    m = re.search(r"read bandwidth: ([0-9.]+) GB/s", res.get("notes", {}).get(f"bandwidth {env}", ""))
    return float(m.group(1)) * 1e9 if m else None


def bandwidth_summary(res, env):
    """'median 31.2 GB/s (24.0–51.6 over 40 processes)' for the machine section."""
    bws = process_bandwidths(res, env)
    if not bws:
        return res.get("notes", {}).get(f"bandwidth {env}", "not measured")
    return (f"median {statistics.median(bws) / 1e9:.1f} GB/s ({min(bws) / 1e9:.1f}–{max(bws) / 1e9:.1f} over "
            f"{len(bws)} measurements, one per Orochi process)")


def roofline_row(res, samples, shape, env, verdict):
    """The goal row 'decode at depth 0 reads its bytes at ≥ ROOFLINE_GOAL of the measured bandwidth'.
    Each Orochi process measures the read bandwidth just before its own decode, and the machine's
    bandwidth moves by 2x within minutes, so each run is held to the bandwidth of its own moment:
    bytes per decoded token (`orochi inspect`) × that run's tokens/s ÷ that run's bandwidth, median over
    the runs. llama.cpp's fraction: each of its runs against the median bandwidth Orochi measured in the
    same round (it measures none itself). Older results without per-run figures use the first one noted."""
    goal = ROOFLINE_GOAL[shape]
    label = f"decode ≥ {goal} of the bandwidth roofline"
    c = ceilings_for(res, shape) or {}
    nbytes = c.get("shapes", {}).get(shape, {}).get("bytes")
    if not nbytes:
        return (shape, label, env, "not measured", "—", "—")
    mine = [s for s in matching(samples, shape=shape, engine="orochi", dtype="f32", env=env, metric="decode", depth=0)
            if s.get("bw")]
    if mine:
        fracs = [nbytes * s["tps"] / s["bw"] for s in mine]
        frac = statistics.median(fracs)
        by_round = {}
        for s in mine:
            by_round.setdefault(s["round"], []).append(s["bw"])
        peer_fracs = [nbytes * s["tps"] / statistics.median(by_round[s["round"]])
                      for s in matching(samples, shape=shape, engine="llama.cpp", dtype="f32", metric="decode", depth=0)
                      if s.get("round") in by_round]
        peer = f"; llama.cpp {statistics.median(peer_fracs):.2f}" if peer_fracs else ""
        bws = [s["bw"] for s in mine]
        return (shape, label, env,
                f"{frac:.2f} (depth 0, median of {len(fracs)} runs, each {nbytes / 1e6:.1f} MB per token × its tok/s ÷ the "
                f"bandwidth its own process measured, {min(bws) / 1e9:.1f}–{max(bws) / 1e9:.1f} GB/s; runs "
                f"{min(fracs):.2f}–{max(fracs):.2f}{peer})", verdict(frac >= goal), "—")
    bw = measured_bandwidth(res, env)
    ours = value(samples, shape=shape, engine="orochi", dtype="f32", env=env, metric="decode", depth=0)
    theirs = value(samples, shape=shape, engine="llama.cpp", dtype="f32", metric="decode", depth=0)
    if not (bw and ours):
        return (shape, label, env, "not measured", "—", "—")
    frac = nbytes * ours / bw
    peer = f"; llama.cpp {nbytes * theirs / bw:.2f}" if theirs else ""
    return (shape, label, env, f"{frac:.2f} (depth 0: {nbytes / 1e6:.1f} MB per token × {fmt(ours)} tok/s ÷ {bw / 1e9:.1f} GB/s{peer})",
            verdict(frac >= goal), "—")


def render_ceilings(c):
    """The ceilings section: what the machine allows, measured in this run with our own kernels."""
    if not c:
        return []
    peak = c.get("fma_all") or 0
    lines = ["", "### Ceilings of this machine in this run", "",
             f"Measured by `make ceilings` (Benchmarks/Ceilings/ceilings.c, with the kernels Orochi runs) "
             + ("before and after the engines, each figure the better of the two" if c.get("measured") else "once, before the engines")
             + f": `{c['command']}`.", "",
             f"- FMA peak: {c['fma_one_core'] / 1e9:.1f} GFLOP/s on one core, {peak / 1e9:.1f} on {c['threads']} threads "
             f"(independent vector multiply-adds, {c['isa']}).",
             f"- Each layer product of {PP} tokens, X[{PP}, K]·W[N, K]ᵀ, by the kernel Orochi runs for it "
             f"(OpenBLAS's sgemm, {c['blas']}, or Orochi's multi-token kernel, marked *): " +
             ", ".join(f"N {g['n']} K {g['k']} {g['flops'] / 1e9:.0f}" + ("*" if g.get("kernel") == "orochi" else "")
                       + (f" ({100 * g['flops'] / peak:.0f} %)" if peak else "")
                       for g in c["sgemm"]) + " GFLOP/s (% of the FMA peak).",
             "- One-token products (orochi_matvec, f32) cycling over a working set of each model's bytes per token, "
             "as decode reads them: " + ", ".join(f"{x['megabytes']:g} MB {x['bytes_per_second'] / 1e9:.1f} GB/s" for x in c["cycle"]) +
             " (below the last-level cache a set is read from cache; the L3 here is shared with other machines).",
             f"- Mamba's selective scan: {c['scan_ns_per_update']['prefill512']:.3f} ns per state update over {PP} steps on "
             f"{c['threads']} threads, {c['scan_ns_per_update']['decode']:.3f} for one step (one thread)."]
    return lines


def render(res, doc_header):
    samples = res["samples"]
    m = res["machine"]
    a = res["settings"]
    envs = a["envs"]
    lines = [doc_header.rstrip(), ""]
    lines += [f"## The run of {m['date']}", ""]
    lines += [f"- Machine: {m['cpu']}, {m['cpus']} logical CPUs; {m['caches']}.",
              f"- Instruction sets: {m['flags']} (absent: {m['no_flags'] or 'none'}).",
              "- OpenBLAS kernels Orochi ran with: " + "; ".join(f"OPENBLAS_CORETYPE {e}: {m['blas_core'].get(e, '?')}" for e in envs) + ".",
              f"- Environment as found: " + ", ".join(f"{k}={v}" for k, v in m["env"].items() if v) + ".",
              "- Memory read bandwidth (Orochi's measurement, 512 MB read by 1 and by all threads, the better of the two): "
              + "; ".join(f"OPENBLAS_CORETYPE {e}: {bandwidth_summary(res, e)}" for e in envs) + ".",
              f"- Threads: {a['threads']} for both engines. Rounds per point: up to {a['rounds']} ({a['rounds_4096']} at depth ≥ 4,096)"
              + (f", fewer where a point's rounds would pass {a['max_point_seconds']:.0f} s (the tables' rounds column); " if a.get("max_point_seconds") else "; ")
              + f"Orochi repetitions per run {a['orochi_reps']}, llama-bench -r {a['llama_reps']}"
              + (f"; both engines under `nice -n {a['nice']}`" if a.get("nice") else "")
              + (f"; llama-bench also given `{a['llama_args']}`" if a.get("llama_args") else "") + ".",
              f"- Wall time of the measuring runs (all runs appended into these results): {res['wall_s'] / 60:.1f} min.", ]
    loads = [s["load"] for s in samples if s.get("load") is not None]
    if loads:
        lines.append(f"- 1-minute load average before each measurement: median {statistics.median(loads):.2f}, max {max(loads):.2f} "
                     f"(2 cores: above ~2.5 other work shared the machine).")
        if statistics.median(loads) > 2.5:
            lines += ["", f"**Warning: the machine was busy with other work during this run (median load "
                      f"{statistics.median(loads):.1f} on 2 cores). Both engines spin-wait between their 2 threads, so a "
                      "descheduled thread stalls the other: the figures below measure contention as much as the engines, "
                      "llama.cpp's decode most of all. Rerun `make bench-peer` on a quiet machine before drawing conclusions.**"]
    for note in res.get("remarks", []):
        lines += ["", f"- Note: {note}"]
    lines += render_ceilings(res.get("ceilings"))
    # The commands whose measurements the report shows (an --append run keeps others' shapes).
    commands = []
    for shape in a["shapes"]:
        c = a.get("per_shape", {}).get(shape, {}).get("command")
        if c and c not in commands:
            commands.append(c)
    lines += ["", "Command:" if len(commands) <= 1 else "Commands:", "", "```sh", "\n".join(commands) or res["command"], "```", ""]

    goal_rows = []
    for shape in a["shapes"]:
        ps = {**a, **a.get("per_shape", {}).get(shape, {})}
        lines += [f"### {shape}: {SHAPE_TEXT[shape]}", ""]
        if ps.get("date") and ps.get("date") != m["date"]:
            lines += [f"Measured {ps['date']} (`{ps.get('command', '')}`).", ""]
        sl = [x["load"] for x in samples if x["shape"] == shape and x.get("load") is not None]
        busy = bool(sl) and statistics.median(sl) > BUSY_LOAD

        bound_prefill, bound_decode = bounds(ceilings_for(res, shape), shape)

        def ceiling_cell(metric, env):
            # What the machine allows at most, from the ceilings (the default kernels only).
            if env != "unset":
                return "—"
            ref = value(samples, shape=shape, engine="llama.cpp", dtype="f32", metric=metric, depth=0)
            bound = bound_prefill if metric == "prefill" else bound_decode
            if bound is None or not ref:
                return "—"
            what = "layer products at their measured rates" + (" + the scan" if shape.startswith("mamba") else "") \
                if metric == "prefill" else "its bytes at the measured cycling bandwidth, depth 0"
            return f"{fmt(bound)} tok/s = {bound / ref:.2f}× ({what})"

        def verdict(ok, busy=busy):
            if busy:
                return "no verdict: busy machine (the ratio " + ("reaches" if ok else "misses") + " the goal)"
            return "met" if ok else "not met"

        if sl:
            lines += [f"1-minute load average before these measurements: median {statistics.median(sl):.1f}, "
                      f"range {min(sl):.1f}–{max(sl):.1f} (2 cores).", ""]
        header = "| measure | rounds | llama.cpp tok/s | " + " | ".join(f"Orochi tok/s ({e}) | ratio ({e})" for e in envs) + " |"
        lines += [header, "|" + "---|" * (3 + 2 * len(envs))]
        rows = [("prefill pp512", "prefill", 0)] + [(f"decode at depth {d:,}", "decode", d) for d in ps["depths"]]
        ratios = {e: {"prefill": [], "decode": []} for e in envs}
        for label, metric, depth in rows:
            ref = value(samples, shape=shape, engine="llama.cpp", dtype="f32", metric=metric, depth=depth)
            n_rounds = len({x["round"] for x in samples if x["shape"] == shape and x["engine"] == "llama.cpp"
                            and x["dtype"] == "f32" and x["metric"] == metric and x["depth"] == depth})
            cells = [label, str(n_rounds), fmt(ref)]
            for e in envs:
                ours = value(samples, shape=shape, engine="orochi", dtype="f32", env=e, metric=metric, depth=depth)
                r = ratio(ours, ref)
                ratios[e][metric].append((depth, r))
                spread = round_spread(samples, dict(shape=shape, engine="orochi", dtype="f32", env=e, metric=metric, depth=depth),
                                      dict(shape=shape, engine="llama.cpp", dtype="f32", metric=metric, depth=depth))
                cells += [fmt(ours), fr(r) + spread]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        # f16 against f32 decode.
        if ps["f16_depths"]:
            lines += ["f16 checkpoint against f32, decode tok/s (ratio = f16 / f32; llama.cpp's f16 GGUF for reference):", "",
                      "| depth | llama.cpp f32 | llama.cpp f16 | llama.cpp f16/f32 | " +
                      " | ".join(f"Orochi f32 ({e}) | Orochi f16 ({e}) | f16/f32 ({e})" for e in envs) + " |",
                      "|" + "---|" * (4 + 3 * len(envs))]
            f16r = {e: [] for e in envs}
            for d in ps["f16_depths"]:
                l32 = value(samples, shape=shape, engine="llama.cpp", dtype="f32", metric="decode", depth=d)
                l16 = value(samples, shape=shape, engine="llama.cpp", dtype="f16", metric="decode", depth=d)
                cells = [f"{d:,}", fmt(l32), fmt(l16), fr(ratio(l16, l32))]
                for e in envs:
                    o32 = value(samples, shape=shape, engine="orochi", dtype="f32", env=e, metric="decode", depth=d)
                    o16 = value(samples, shape=shape, engine="orochi", dtype="f16", env=e, metric="decode", depth=d)
                    r = ratio(o16, o32)
                    f16r[e].append((d, r))
                    spread = round_spread(samples, dict(shape=shape, engine="orochi", dtype="f16", env=e, metric="decode", depth=d),
                                          dict(shape=shape, engine="orochi", dtype="f32", env=e, metric="decode", depth=d))
                    cells += [fmt(o32), fmt(o16), fr(r) + spread]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        for e in envs:
            for metric in ("prefill", "decode"):
                got = [(d, r) for d, r in ratios[e][metric] if r is not None]
                goal = GOALS[shape][metric]
                if not got:
                    goal_rows.append((shape, f"{metric} ≥ {goal}× llama.cpp", e, "not measured", "—", ceiling_cell(metric, e)))
                    continue
                worst = min(got, key=lambda x: x[1])
                where = "pp512" if metric == "prefill" else f"worst at depth {worst[0]:,}; " + ", ".join(f"{d:,}: {r:.2f}×" for d, r in got)
                goal_rows.append((shape, f"{metric} ≥ {goal}× llama.cpp", e, f"{worst[1]:.2f}× ({where})",
                                  verdict(worst[1] >= goal), ceiling_cell(metric, e)))
            if shape in ROOFLINE_GOAL:
                goal_rows.append(roofline_row(res, samples, shape, e, verdict))
            if ps["f16_depths"]:
                got = [(d, r) for d, r in f16r[e] if r is not None]
                if got:
                    worst = min(got, key=lambda x: x[1])
                    goal_rows.append((shape, f"f16 decode ≥ {F16_GOAL}× f32", e,
                                      f"{worst[1]:.2f}× (" + ", ".join(f"depth {d:,}: {r:.2f}×" for d, r in got) + ")",
                                      verdict(worst[1] >= F16_GOAL), "—"))
        extra = [s for s in samples if s["shape"] == shape and s["metric"].startswith("prefill") and s["metric"] != "prefill"]
        if extra:
            lines += ["Orochi's prefill of the whole context at the deep points (no llama.cpp counterpart in this table): " +
                      "; ".join(f"{e}: " + ", ".join(f"{mt[7:]} tokens {fmt(value(samples, shape=shape, engine='orochi', dtype='f32', env=e, metric=mt))} tok/s"
                                                    for mt in sorted({s['metric'] for s in extra}, key=lambda x: int(x[7:])))
                                for e in envs) + ".", ""]

    lines += ["## Goals (issue 10)", "",
              "Ratio = Orochi / llama.cpp (f32 checkpoints), or f16 / f32 decode for Orochi; a decode goal is met when it holds at every depth measured. "
              f"A shape measured at a median load above {BUSY_LOAD} (other work on the 2 cores) gets no verdict: contention, not the engines, sets its figures.", "",
              "The last column is the most the machine allows in this run (see \"Ceilings\" above): an Orochi that did "
              "nothing but the named work at the measured rates would reach that ratio, so a goal above it cannot be met "
              "on this machine by any kernel we run.", "",
              "| shape | goal | OPENBLAS_CORETYPE | measured | | ceiling in this run |", "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in goal_rows]
    lines += ["", f"Raw samples: [{a['out_dir']}/results.json]({os.path.relpath(a['out_dir'], 'docs')}/results.json) and `results.csv` "
              "(one row per measured value, with the load average before and after it).", ""]
    return "\n".join(lines) + "\n"


DOC_HEADER = """# Performance against llama.cpp

`make bench-peer` measures Orochi and llama.cpp in the same run, on the same random-weight checkpoints
(see below), with 2 threads each, and writes this page. `make peer` builds the peer alone: llama.cpp's
`llama-bench` from the vendored llama.cpp of the PyPI sdist `llama-cpp-python==0.3.36` (CPU backend,
`GGML_NATIVE=ON`, Release), into `build/peer/`. Neither runs in CI or `make test`.

Between builds of Orochi itself (a refactor, a kernel change) the check is paired and interleaved
(`Scripts/peer/ab_builds.py`, no peer involved): those runs are in [bench/ab-builds.md](bench/ab-builds.md).

A real model in llama.cpp's own formats — SmolLM2-135M-Instruct as a GGUF in Q4_1 (as shipped), Q8_0,
Q4_K_M and Q4_0 — is measured against `llama-bench` in [gguf.md](gguf.md#speed-against-llamacpp)
(2026-12-07, AMD EPYC with AVX2, 2 threads, one run: decode at depth 512 1.3–1.75× llama.cpp's,
prefill of 512 tokens 1.1–2.4×); this page's script does not measure it yet.

```sh
make peer                              # llama-bench (cmake, g++ via apt when missing; 2 build jobs)
make bench-peer                        # checkpoints, both engines interleaved, this page (~20 min)
make bench-peer PEER_SHAPES=6m         # a subset: 6m, 130m, or names like llama-6m
make bench-peer PEER_QUICK=1           # one round, depths 0 and 512 only
make bench-peer PEER_NICE=-10          # both engines under nice -n -10 (as root), on a busy machine
make bench-peer PEER_SHAPES=130m PEER_APPEND=1   # remeasure some shapes, keep the others' results
make bench-peer PEER_ARGS="--rounds 5 --llama-args '--poll 0'"   # any option of the script
make ceilings                          # what this machine allows (bench-peer runs it first), see below
python3 Scripts/peer/bench_peer.py --replay docs/bench/peer/results.json --doc docs/performance.md   # re-render
```

How it measures (Scripts/peer/bench_peer.py; checkpoints by Scripts/peer/make_checkpoints.py):
- Checkpoints: transformers' `LlamaForCausalLM` / `MambaForCausalLM` with their own seeded random
  initialisation, saved as safetensors in float32 and in float16, and converted to GGUF f32 and f16 by
  the same llama.cpp's `convert_hf_to_gguf.py` (tokenizer: the shipped 8,000-piece SentencePiece model;
  the 32,000 vocabularies are padded with unused tokens by the converter). Under `build/peer/models/`.
- Point by point (decode at depth 0 with pp512, depth 512, depth 4,096), round by round, one engine
  after the other, the order alternating between rounds; the figure is the median over the rounds (up to
  3, 2 at depth 4,096; no further round once a point's rounds would pass 150 s, so that the whole run
  stays under 20 minutes: 15 min for all four shapes on 2 cores at a load of ~6, 2026-12-01).
- Orochi: `orochi bench --model DIR --contexts N --decode-tokens 32 --repetitions 1 --threads 2
  --breakdown-contexts none --format json` with `OPENBLAS_NUM_THREADS=2`, one process per measurement.
  pp512 = its prefill of 512 tokens from an empty cache (the run of the depth-512 point); decode at depth d = 1 / median of 32 single-token
  steps after a prefill of d tokens. Depth 0 is measured as context 1 (one prompt token, the smallest the
  harness accepts), so its steps run at depths 1–32.
- llama.cpp: `llama-bench -m X.gguf -t 2 -p 512 -n 32 -d 0 -r 1 -o json` for pp512 and decode at depth 0,
  `-p 0 -n 32 -d D` for the deeper points; tg32 tok/s = 32 / the time of the 32 steps (a mean, where
  Orochi's is a median of steps).
- Orochi runs twice per point: with `OPENBLAS_CORETYPE` removed from its environment (OpenBLAS picks its
  kernels itself; Orochi then chooses them from the CPU's features, see README "Which kernels run") and
  with `OPENBLAS_CORETYPE=Prescott` (OpenBLAS's SSE3 kernels, the case of a CPU the library does not
  know). llama.cpp does not use OpenBLAS, so it runs once.
- f16: Orochi's decode on the float16 safetensors against the float32 ones, and llama.cpp's f16 GGUF for
  reference.
- The OpenBLAS kernels are the `blas` line of `orochi inspect` when it prints one, else
  `openblas_get_corename()` of the library Orochi links, called under the same environment. The memory
  bandwidth is Orochi's own measurement (a `bandwidth` line or JSON field of `orochi bench`) when it has one.
- Ratios > 1 mean Orochi is faster. These shared 2-core machines move absolute figures by ±40 % between
  runs; compare ratios taken in one run, never against figures from another day. A ratio is the median
  of one engine over the median of the other; the bracket after it gives the lowest and highest of the
  per-round ratios (two runs of the same round, back to back), where 3 rounds or more have both: how far
  the machine moved the figure within this run.

How to read the decode figures: one decoded token reads every weight once (and, for Llama, the KV cache
of its depth), so decode is bounded by the memory read bandwidth that `orochi bench` measures before
each run (printed under "Memory read bandwidth"): bytes read per token (`orochi inspect` prints them)
× tokens/s ÷ bandwidth is the fraction of that roofline reached. The goal row holds each Orochi run to
the bandwidth its own process measured a moment before (the machine's moves by 2× within minutes) and
takes the median of those fractions; llama.cpp's runs are held to Orochi's figures of the same round.
Where both engines stream the same
f32 bytes at the same roofline, a decode ratio cannot exceed llama.cpp's distance from it. On an
AVX-512 CPU, prefill's layer products run through Orochi's own multi-token kernel whatever the
OpenBLAS core (README, "Which kernels run"; OpenBLAS keeps inner sizes above 4,096 and narrow
products of large inner size, none of them in these shapes), so the two OPENBLAS_CORETYPE columns
differ only by the noise of the machine; attention's tile products in the prefill are Orochi's own
kernels everywhere.

Ceilings: before the engines run, `make ceilings` (Benchmarks/Ceilings/ceilings.c, built from the kernels'
own C sources) measures what the machine allows with the kernels Orochi runs: the FMA peak, every layer
product of a 512-token prefill by the kernel Orochi runs for it (Orochi's own multi-token kernel, or
OpenBLAS's sgemm for the shapes it keeps), Orochi's one-token products reading a working set the
size of each model's bytes per token over and over (as decode does: a set that fits the shared L3 reads
from cache, a larger one from DRAM), and the selective scan's cost per state update. From them the goal
table derives, per shape, the fastest prefill (layer products at those rates, plus the scan for Mamba,
nothing else) and the fastest decode at depth 0 (its bytes at that bandwidth, nothing else), as a ratio
to llama.cpp's figure in the same run: a goal above that ceiling cannot be met on this machine with these
kernels. The ceilings are measured before and after the engines and each figure is the better of the two;
a shared machine's bandwidth and clock move during a run, so an engine can still pass one now and then.
"""


def write_raw(res, out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    keys = ["shape", "engine", "dtype", "env", "metric", "depth", "round", "tps", "load", "load_end"]
    with open(out_dir / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        for s in res["samples"]:
            w.writerow(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orochi", default=".build/release/orochi")
    ap.add_argument("--llama-bench", default="build/peer/llama.cpp-build/bin/llama-bench")
    ap.add_argument("--models", type=Path, default=Path("build/peer/models"))
    ap.add_argument("--ceilings", default="build/ceilings/ceilings",
                    help="the ceilings program (make ceilings); its figures bound the goals ('' to skip)")
    ap.add_argument("--shapes", default="6m 130m")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--depths", default="0,512,4096", help="decode depths (0 also measures pp512)")
    ap.add_argument("--f16-depths", default="0,512", help="depths at which f16 is measured against f32 ('' for none)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rounds-4096", type=int, default=2, help="rounds at depths ≥ 4,096")
    ap.add_argument("--max-point-seconds", type=float, default=150,
                    help="no further round of a point once its rounds would pass this many seconds (one round always runs; 0: no limit)")
    ap.add_argument("--orochi-reps", type=int, default=1)
    ap.add_argument("--llama-reps", type=int, default=1)
    ap.add_argument("--envs", default="unset,Prescott", help="OPENBLAS_CORETYPE settings for Orochi: unset, Prescott")
    ap.add_argument("--quick", action="store_true", help="one round, depths 0 and 512, f16 at depth 0")
    ap.add_argument("--llama-args", default="", help="more llama-bench options (e.g. '--poll 0'); recorded in the report")
    ap.add_argument("--nice", type=int, default=0, help="run both engines under nice -n N (e.g. -5 on a busy machine, as root)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds for one engine run")
    ap.add_argument("--out-dir", type=Path, default=Path("docs/bench/peer"))
    ap.add_argument("--doc", type=Path, default=Path("docs/performance.md"))
    ap.add_argument("--note", action="append", default=[], help="a remark for the report (repeatable; kept in results.json)")
    ap.add_argument("--append", action="store_true",
                    help="keep the other shapes' results from OUT_DIR/results.json (measure a subset, report all)")
    ap.add_argument("--replay", type=Path, help="re-render --doc from a results.json; measure nothing")
    a = ap.parse_args()

    if a.replay:
        res = json.loads(a.replay.read_text())
        if a.note:
            res["remarks"] = res.get("remarks", []) + [r for r in a.note if r not in res.get("remarks", [])]
            a.replay.write_text(json.dumps(res, indent=1, default=str) + "\n")
        a.doc.write_text(render(res, DOC_HEADER))
        print(f"wrote {a.doc}", file=sys.stderr)
        return

    if a.quick:
        a.rounds, a.rounds_4096, a.depths, a.f16_depths = 1, 1, "0,512", "0"
    a.shapes = shapes_for(a.shapes)
    a.depths = sorted({int(x) for x in a.depths.split(",") if x.strip()})
    a.f16_depths = sorted({int(x) for x in a.f16_depths.split(",") if x.strip()} & set(a.depths))
    a.envs = [e.strip() for e in a.envs.split(",") if e.strip()]
    for e in a.envs:
        if e not in ENVS:
            sys.exit(f"--envs: unknown '{e}' (known: {', '.join(ENVS)})")
    for s in a.shapes:
        for p in [a.models / s / "f32", a.models / f"{s}-f32.gguf"] + ([a.models / s / "f16", a.models / f"{s}-f16.gguf"] if a.f16_depths else []):
            if not p.exists():
                sys.exit(f"missing {p}: run make_checkpoints.py (make peer-models) first")

    runner = Runner(a)
    info = machine_info(a.orochi, a.models, a.shapes)
    command = " ".join(shlex.quote(x) for x in ["python3"] + sys.argv)
    if os.environ.get("MAKELEVEL"):
        command = f"make bench-peer  # ran: {command}"
    runner.say("ceilings: FMA peak, sgemm at the layers' shapes, one-token products over each model's bytes, the scan")
    shapes = ceiling_shapes(a) if a.ceilings else {}
    ceilings = measure_ceilings(a, shapes)
    start = time.monotonic()
    interrupted = False
    try:
        runner.run()
        runner.say("ceilings again, after the engines")
        ceilings = best_of(ceilings, measure_ceilings(a, shapes))
    except KeyboardInterrupt:
        interrupted = True
        runner.say("interrupted: writing what was measured")
    settings = dict(shapes=a.shapes, depths=a.depths, f16_depths=a.f16_depths, rounds=a.rounds, rounds_4096=a.rounds_4096,
                    max_point_seconds=a.max_point_seconds,
                    orochi_reps=a.orochi_reps, llama_reps=a.llama_reps, threads=a.threads, envs=a.envs, nice=a.nice, llama_args=a.llama_args,
                    out_dir=str(a.out_dir), interrupted=interrupted)
    settings["per_shape"] = {s: dict(depths=a.depths, f16_depths=a.f16_depths, rounds=a.rounds, rounds_4096=a.rounds_4096,
                                     date=info["date"], command=command) for s in a.shapes}
    res = dict(schema="orochi-peer/1", machine=info, settings=settings, command=command,
               wall_s=time.monotonic() - start, notes=runner.notes, samples=runner.samples,
               runs=[[engine, env, " ".join(map(str, cmd))] for engine, env, cmd in runner.log], remarks=a.note,
               ceilings=ceilings)
    old_path = a.out_dir / "results.json"
    if a.append and old_path.exists():
        # Keep the shapes this run did not measure from the earlier results (same folder).
        old = json.loads(old_path.read_text())
        kept = [sh for sh in old["settings"]["shapes"] if sh not in a.shapes]
        old_per_shape = old["settings"].get("per_shape", {})
        for sh in kept:
            settings["per_shape"][sh] = old_per_shape.get(sh) or dict(
                depths=old["settings"]["depths"], f16_depths=old["settings"]["f16_depths"], rounds=old["settings"]["rounds"],
                rounds_4096=old["settings"]["rounds_4096"], date=old["machine"]["date"], command=old["command"])
        settings["shapes"] = [sh for sh in SHAPES if sh in kept or sh in a.shapes]
        res["samples"] = [x for x in old["samples"] if x["shape"] in kept] + res["samples"]
        res["runs"] = old.get("runs", []) + res["runs"]
        res["notes"] = {**old.get("notes", {}), **res["notes"]}
        res["remarks"] = old.get("remarks", []) + [r for r in res["remarks"] if r not in old.get("remarks", [])]
        res["wall_s"] += old.get("wall_s", 0)
        # The kept shapes' bounds come from the ceilings of the run that measured them.
        kept_ceilings = {sh: ceilings_for(old, sh) for sh in kept if ceilings_for(old, sh)}
        if kept_ceilings:
            res["ceilings_kept"] = kept_ceilings
        res["command"] = old["command"] + "\n" + command
    write_raw(res, a.out_dir)
    a.doc.write_text(render(res, DOC_HEADER))
    print(f"wrote {a.out_dir}/results.json, results.csv and {a.doc}", file=sys.stderr)
    if interrupted:
        sys.exit(130)


if __name__ == "__main__":
    main()
