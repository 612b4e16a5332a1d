#!/usr/bin/env python3
"""Sustained load on a local Orochi server (or nginx in front of several): `make load`, `make serve-replicas`.

A bounded number of clients (the official `openai` package, AsyncOpenAI, no retries) each send
streaming completions one after another for a bounded time: prompts cut from a text file at random
(seeded) places and lengths, `max_tokens` tokens each with `ignore_eos`, so every request
generates the same number of tokens, and `logprobs: 1`, so every token arrives as its own event
even when its text is empty (random-weight models sample ids their tokenizer cannot spell).

Phases: an optional single-stream baseline (`--baseline-seconds`), then `--concurrency` streams
for `--duration` seconds. A phase stops starting requests at its end and waits for those running.
It prints, per phase: requests, errors (by kind), time to first token p50/p99 (request sent to
first token event), inter-token gap p50/p99, and aggregate tokens/s (completion tokens of the
phase's requests / the phase's wall time); then the ratio of the loaded phase to the baseline.

Resident memory: with `--server-pid` (repeatable), VmRSS of each server is read every second;
the report gives it at the end of the warm-up (`--warmup` seconds into the loaded phase), its
largest value after, and at the end.

Stopping a replica (`make serve-replicas`): `--stop-pid PID --stop-at S --stop-signal TERM|KILL`
sends the signal S seconds into the loaded phase; with `--upstream-of-stopped ADDR` (the replica's
address as nginx reports it in the `X-Upstream` response header) the report splits the requests
into those running on that replica when it was stopped, and those started after.

Only loopback addresses are accepted: this drives a server on this machine, never someone else's.
"""
import argparse
import asyncio
import ipaddress
import json
import os
import random
import signal
import statistics
import sys
import time
import urllib.parse

import openai


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Prompts:
    """Prompts cut from a text at seeded random places: `lo`–`hi` characters each."""

    def __init__(self, path, seed, lo, hi):
        with open(path, encoding="utf-8") as f:
            self.text = " ".join(f.read().split())
        if len(self.text) < hi + 1:
            raise SystemExit(f"load: {path} has {len(self.text)} characters; prompts need more than {hi}")
        self.rng = random.Random(seed)
        self.lo, self.hi = lo, hi

    def next(self):
        n = self.rng.randint(self.lo, self.hi)
        start = self.rng.randrange(0, len(self.text) - n)
        return self.text[start:start + n]


async def one_request(client, model, prompt, max_tokens, phase, t0):
    rec = {"phase": phase, "start": time.monotonic() - t0, "ttft": None, "end": None, "tokens": 0,
           "prompt_tokens": None, "ok": False, "error": None, "upstream": None, "gaps": []}
    sent = time.monotonic()
    last = None
    try:
        stream = await client.completions.create(
            model=model, prompt=prompt, max_tokens=max_tokens, temperature=0.8, stream=True, logprobs=1,
            stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
        rec["upstream"] = stream.response.headers.get("x-upstream")
        finished = False
        async for chunk in stream:
            now = time.monotonic()
            if chunk.choices:
                choice = chunk.choices[0]
                events = len(choice.logprobs.tokens) if choice.logprobs and choice.logprobs.tokens else 0
                if events:
                    if rec["ttft"] is None:
                        rec["ttft"] = now - sent
                    elif last is not None:
                        rec["gaps"].append((now - last) / events)
                    last = now
                if choice.finish_reason:
                    finished = True
            if chunk.usage:
                rec["tokens"] = chunk.usage.completion_tokens
                rec["prompt_tokens"] = chunk.usage.prompt_tokens
        if not finished:
            rec["error"] = "stream ended without a finish_reason"
        elif rec["tokens"] != max_tokens:
            rec["error"] = f"{rec['tokens']} tokens, expected {max_tokens}"
        else:
            rec["ok"] = True
    except openai.APIStatusError as e:
        rec["error"] = f"HTTP {e.status_code}"
        rec["upstream"] = e.response.headers.get("x-upstream")
    except Exception as e:  # connection refused, reset, cut stream: all count as errors
        rec["error"] = type(e).__name__
    rec["end"] = time.monotonic() - t0
    return rec


async def run_phase(args, client, prompts, phase, clients, seconds, t0, on_tick=None):
    records = []
    deadline = time.monotonic() + seconds

    async def worker():
        while time.monotonic() < deadline:
            records.append(await one_request(client, args.model, prompts.next(), args.max_tokens, phase, t0))

    begin = time.monotonic()
    tasks = [asyncio.create_task(worker()) for _ in range(clients)]
    ticker = asyncio.create_task(on_tick(begin)) if on_tick else None
    await asyncio.gather(*tasks)
    wall = time.monotonic() - begin
    if ticker:
        ticker.cancel()
    return records, wall


def summarize(name, records, wall, out):
    ok = [r for r in records if r["ok"]]
    errors = {}
    for r in records:
        if not r["ok"]:
            errors[r["error"]] = errors.get(r["error"], 0) + 1
    tokens = sum(r["tokens"] for r in records)
    ttft = [r["ttft"] for r in ok if r["ttft"] is not None]
    gaps = [g for r in ok for g in r["gaps"]]
    s = {"phase": name, "requests": len(records), "ok": len(ok), "errors": sum(errors.values()),
         "error_kinds": errors, "wall_s": wall, "completion_tokens": tokens, "tokens_per_s": tokens / wall if wall else 0,
         "ttft_p50_ms": percentile(ttft, 0.5) * 1e3, "ttft_p99_ms": percentile(ttft, 0.99) * 1e3,
         "gap_p50_ms": percentile(gaps, 0.5) * 1e3, "gap_p99_ms": percentile(gaps, 0.99) * 1e3,
         "prompt_tokens_median": statistics.median([r["prompt_tokens"] for r in ok if r["prompt_tokens"]] or [0])}
    print(f"{name}: {s['requests']} requests, {s['errors']} errors{(' ' + json.dumps(errors)) if errors else ''}, "
          f"{tokens} tokens in {wall:.1f} s = {s['tokens_per_s']:.1f} tokens/s; "
          f"time to first token p50 {s['ttft_p50_ms']:.0f} ms, p99 {s['ttft_p99_ms']:.0f} ms; "
          f"between tokens p50 {s['gap_p50_ms']:.1f} ms, p99 {s['gap_p99_ms']:.1f} ms; "
          f"prompts {s['prompt_tokens_median']:.0f} tokens (median)", file=out, flush=True)
    return s


def loopback_only(url):
    host = urllib.parse.urlparse(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SystemExit(f"load: {url} is not a loopback address; this tool drives a server on this machine only")


async def main_async(args):
    loopback_only(args.base_url)
    client = openai.AsyncOpenAI(base_url=args.base_url.rstrip("/") + "/v1", api_key=args.api_key or "none",
                                max_retries=0, timeout=args.request_timeout)
    if args.model is None:
        models = await client.models.list()
        args.model = models.data[0].id
    prompts = Prompts(args.prompts, args.seed, args.prompt_chars[0], args.prompt_chars[1])
    t0 = time.monotonic()
    out = sys.stdout
    result = {"args": {k: v for k, v in vars(args).items()}, "phases": [], "rss": {}}
    print(f"load: {args.base_url}, model {args.model}, {args.max_tokens} tokens per request, prompts of "
          f"{args.prompt_chars[0]}-{args.prompt_chars[1]} characters", file=out, flush=True)

    baseline = None
    if args.baseline_seconds > 0:
        records, wall = await run_phase(args, client, prompts, "single", 1, args.baseline_seconds, t0)
        baseline = summarize("1 stream", records, wall, out)
        result["phases"].append(baseline)
        result.setdefault("records", []).extend(records)

    rss = {pid: [] for pid in args.server_pid}
    stop = {"at": None}

    async def tick(begin):
        while True:
            now = time.monotonic() - begin
            for pid in args.server_pid:
                value = rss_kib(pid)
                if value is not None:
                    rss[pid].append((now, value))
            if args.stop_pid and stop["at"] is None and now >= args.stop_at:
                os.kill(args.stop_pid, getattr(signal, "SIG" + args.stop_signal))
                stop["at"] = time.monotonic() - t0
                print(f"sent SIG{args.stop_signal} to {args.stop_pid} at {now:.1f} s into the phase", file=out, flush=True)
            if args.progress and int(now) % args.progress == 0 and now > 1:
                print(f"  {now:.0f} s", file=out, flush=True)
            await asyncio.sleep(1)

    records, wall = await run_phase(args, client, prompts, "loaded", args.concurrency, args.duration, t0, tick)
    loaded = summarize(f"{args.concurrency} streams", records, wall, out)
    result["phases"].append(loaded)
    result.setdefault("records", []).extend(records)
    if baseline and baseline["tokens_per_s"] > 0:
        ratio = loaded["tokens_per_s"] / baseline["tokens_per_s"]
        loaded["ratio_to_single"] = ratio
        print(f"aggregate throughput: {ratio:.2f}x a single stream", file=out)

    for pid, samples in rss.items():
        if not samples:
            continue
        after = [v for t, v in samples if t >= args.warmup]
        at_warmup = after[0] if after else samples[-1][1]
        r = {"at_warmup_mib": at_warmup / 1024, "max_after_warmup_mib": max(after or [at_warmup]) / 1024,
             "end_mib": samples[-1][1] / 1024, "samples": samples}
        r["growth_after_warmup_mib"] = r["end_mib"] - r["at_warmup_mib"]
        result["rss"][str(pid)] = r
        print(f"server {pid} resident memory: {r['at_warmup_mib']:.1f} MiB at {args.warmup:.0f} s (end of warm-up), "
              f"largest after {r['max_after_warmup_mib']:.1f} MiB, at the end {r['end_mib']:.1f} MiB "
              f"(growth {r['growth_after_warmup_mib']:+.1f} MiB)", file=out)

    if stop["at"] is not None:
        at = stop["at"]
        on_stopped = [r for r in records if r["start"] <= at < r["end"]
                      and (args.upstream_of_stopped is None or r["upstream"] == args.upstream_of_stopped)]
        later = [r for r in records if r["start"] > at]
        split = {"stopped_at_s": at, "signal": args.stop_signal,
                 "running_on_stopped": len(on_stopped), "running_on_stopped_ok": sum(r["ok"] for r in on_stopped),
                 "running_on_stopped_errors": sorted({r["error"] for r in on_stopped if not r["ok"]}),
                 "started_after": len(later), "started_after_ok": sum(r["ok"] for r in later),
                 "started_after_by_upstream": {}}
        for r in later:
            key = r["upstream"] or "?"
            split["started_after_by_upstream"][key] = split["started_after_by_upstream"].get(key, 0) + 1
        result["stop"] = split
        print(f"after SIG{args.stop_signal}: {split['running_on_stopped']} streams were running on the stopped replica "
              f"({split['running_on_stopped_ok']} finished whole; errors: {split['running_on_stopped_errors'] or 'none'}); "
              f"{split['started_after']} requests started afterwards, {split['started_after_ok']} succeeded; "
              f"answered by (X-Upstream: the replicas nginx tried, in order): "
              f"{'; '.join(f'{k}: {v}' for k, v in sorted(split['started_after_by_upstream'].items()))}", file=out)

    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    failed = loaded["errors"] > 0 and not args.stop_pid
    if args.expect_later_ok and stop["at"] is not None:
        failed = result["stop"]["started_after_ok"] != result["stop"]["started_after"]
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", required=True, help="http://127.0.0.1:PORT (loopback only)")
    p.add_argument("--model", help="model id (default: the first /v1/models lists)")
    p.add_argument("--api-key")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--duration", type=float, default=60, help="seconds of the loaded phase")
    p.add_argument("--baseline-seconds", type=float, default=0, help="seconds of a single-stream phase first (0: none)")
    p.add_argument("--warmup", type=float, default=30, help="seconds into the loaded phase at which resident memory is taken as settled")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--prompt-chars", type=int, nargs=2, default=[20, 200], metavar=("MIN", "MAX"))
    p.add_argument("--prompts", default="Models/validation-sample.txt")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--request-timeout", type=float, default=600)
    p.add_argument("--server-pid", type=int, action="append", default=[])
    p.add_argument("--stop-pid", type=int)
    p.add_argument("--stop-at", type=float, default=20)
    p.add_argument("--stop-signal", choices=["TERM", "KILL"], default="TERM")
    p.add_argument("--upstream-of-stopped", help="the stopped replica's address as in X-Upstream (host:port)")
    p.add_argument("--expect-later-ok", action="store_true", help="exit 1 unless every request started after the stop succeeded")
    p.add_argument("--progress", type=int, default=0, help="print a line every N seconds (0: never)")
    p.add_argument("--json", help="write the summary and every request's record here")
    args = p.parse_args()
    for name, lo, hi in (("concurrency", 1, 256), ("max_tokens", 1, 4096)):
        if not lo <= getattr(args, name) <= hi:
            p.error(f"--{name.replace('_', '-')} must be in {lo}...{hi}")
    if not (0 < args.duration <= 24 * 3600) or not (0 <= args.baseline_seconds <= 24 * 3600):
        p.error("--duration must be in (0, 86400] seconds, --baseline-seconds in [0, 86400]")
    if not (1 <= args.prompt_chars[0] <= args.prompt_chars[1] <= 100_000):
        p.error("--prompt-chars MIN MAX: 1 <= MIN <= MAX <= 100000")
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
