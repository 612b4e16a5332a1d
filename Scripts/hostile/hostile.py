#!/usr/bin/env python3
"""Hostile inputs against the release `orochi` binary (issue 11). Python stdlib only.

Generates malformed model files and command lines from the shipped models and the test
fixtures (copied into a temporary folder, then mutated), runs the binary on each under a memory
limit and a timeout, and classifies every run:

  clean     non-zero exit, no signal, a one-line message on stderr (ArgumentParser's usage lines
            after it are allowed), no "Fatal error" / stack dump / sanitizer report
  accepted  exit 0 on an input that the family's rule says is harmless (or may go either way)
  crash     killed by a signal, a Swift runtime trap ("Fatal error"), a stack dump
  hang      still running at the timeout
  silent    exit 0 on an input that the rule says must be refused (includes NaN/Inf in a
            `forward` output, and NaN/Inf weights or state that were accepted)
  untidy    non-zero exit without a crash, but not a one-line message (counted apart)

The rules (which mutation must be refused, which may be accepted) are written next to each
generator below and summarised in docs/hardening.md. The same --seed gives the same cases.

    python3 Scripts/hostile/hostile.py --binary .build/release/orochi [--seed 1] [--jobs 2]
        [--family safetensors,config-llama,...] [--limit N] [--log .build-hostile/hostile.log]
"""
import argparse
import array
import concurrent.futures
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "Tests/OrochiTests/Fixtures")
LLAMA_FIX = os.path.join(FIX, "llama/gqa_linear_f32")
LLAMA_F16_FIX = os.path.join(FIX, "llama/mqa_llama3_f16")
MAMBA_FIX = os.path.join(FIX, "mamba/k4_auto_tied_f32")
MAMBA_BF16_FIX = os.path.join(FIX, "mamba/k4_bias_noconvbias_untied_bf16")
JAMBA_FIX = os.path.join(FIX, "jamba/attn4_moe4top2_untied_f32")
JAMBA_F16_FIX = os.path.join(FIX, "jamba/attn2_moe4top2_tied_f16")
SHARDED_FIX = os.path.join(FIX, "llama/sharded_f32")
SHIPPED_LLAMA = os.path.join(ROOT, "Models/orochi-ja-llama")
SHIPPED_MAMBA = os.path.join(ROOT, "Models/orochi-ja-mamba")
HF_FIXES = [os.path.join(FIX, "tokenizers", d, "tokenizer.json")
            for d in ["hf-bpe-bytelevel", "hf-bpe-metaspace-bytes", "hf-unigram-nfkc", "hf-bpe-pipeline"]]

FAMILIES = ["safetensors", "config-llama", "config-mamba", "config-jamba", "tokenizer-model", "tokenizer-json", "snapshot", "cli"]
OUTCOMES = ["clean", "accepted", "crash", "hang", "silent", "untidy"]

REJECT, ACCEPT, EITHER = "reject", "accept", "either"


class Case:
    """One run: files to lay out in a fresh folder, a command, and what the rule expects."""

    def __init__(self, family, name, expect, args, files=None, base=None, check_npy=False):
        self.family, self.name, self.expect, self.args = family, name, expect, args
        self.files = files or {}      # relative path -> bytes (written into the case folder)
        self.base = base              # a model folder copied into the case folder first (as "m")
        self.check_npy = check_npy    # `forward`: an output with NaN/Inf is a silent success


# ---------------------------------------------------------------------------------------------
# helpers

def read(path):
    with open(path, "rb") as f:
        return f.read()


def st_split(raw):
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def st_join(header, data, text=None):
    h = text if text is not None else json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + data


def nonfinite_after_flip(dtype, data, entry, pos):
    """Whether the element of `entry` holding data byte `pos` is NaN/Inf."""
    size = {"F32": 4, "F16": 2, "BF16": 2}.get(dtype)
    if size is None:
        return False
    begin = entry["data_offsets"][0]
    start = begin + ((pos - begin) // size) * size
    b = data[start:start + size]
    if dtype == "F32":
        v = struct.unpack("<f", b)[0]
    elif dtype == "F16":
        v = struct.unpack("<e", b)[0]
    else:
        v = struct.unpack("<f", b"\x00\x00" + b)[0]
    return not math.isfinite(v)


HUGE_INTS = [2**31, 2**32 + 1, 2**53 + 1, 2**62, 2**63 - 1, 2**63, 2**64, 10**30]
BAD_VALUES = [-1, 0, 1.5, "8", None, [], {}, True, -(2**63), 1e308, "NaN"] + HUGE_INTS


def jdump(obj):
    return json.dumps(obj, indent=2).encode()


def forward(model="m", ids="1 2 3", extra=()):
    return ["forward", "--model", model, "--ids", ids, "--out", "out.npy", "--threads", "1", *extra]


# ---------------------------------------------------------------------------------------------
# safetensors. Rule: any change to the header that breaks the format (length, JSON, dtype,
# shape, offsets: overlapping, duplicate, out of range, inconsistent with shape × dtype) must be
# refused; so must a missing weight. Accepted: extra unknown tensors, a [n] vector stored as
# [1, n], gaps between tensors (the format forbids them, Orochi may tolerate them: either),
# unknown __metadata__ (either), and byte flips inside the data section that leave every weight
# finite. A flip that makes a weight NaN or Inf must be refused (NaN weights are not legitimate).

def gen_safetensors(rng):
    cases = []
    bases = [(LLAMA_FIX, "llama-f32"), (LLAMA_F16_FIX, "llama-f16"), (MAMBA_FIX, "mamba-f32"), (MAMBA_BF16_FIX, "mamba-bf16")]
    for base, tag in bases:
        raw = read(os.path.join(base, "model.safetensors"))
        header, data = st_split(raw)
        names = sorted(k for k in header if k != "__metadata__")
        n = struct.unpack("<Q", raw[:8])[0]

        def add(name, expect, blob):
            cases.append(Case("safetensors", f"{tag}/{name}", expect, forward(), {"m/model.safetensors": blob}, base=base, check_npy=True))

        add("unchanged", ACCEPT, raw)
        # Header length off by a few bytes, and absurd.
        for d in [-8, -3, -2, -1, 1, 2, 3, 8]:
            add(f"hlen{d:+d}", REJECT, struct.pack("<Q", n + d) + raw[8:])
        for v in [0, 1, len(raw) - 8, len(raw) - 7, 2**32, 2**63, 2**64 - 1]:
            add(f"hlen={v}", REJECT, struct.pack("<Q", v) + raw[8:])
        # Truncations: inside the length, the header, the data.
        for cut in sorted(set([0, 4, 7, 8, 9, 8 + n // 2, 8 + n - 1, 8 + n, 8 + n + 1] + [8 + n + rng.randrange(1, len(data)) for _ in range(6)] + [len(raw) - 1])):
            add(f"truncate@{cut}", REJECT, raw[:cut])
        # Not a JSON object of entries.
        for text in [b"", b"[]", b"null", b"{", b"{}", b'{"a":1}', b"\xff\xfe{}", b'{"__metadata__":{}}', b" " * 16]:
            add(f"header={text[:12]!r}", REJECT, st_join(None, data, text))
        for _ in range(12):
            t = rng.choice(names)
            e = dict(header[t])
            h = dict(header)
            kind = rng.choice(["dtype", "shape", "offsets", "missing", "dup", "overlap", "range"])
            expect = REJECT
            if kind == "dtype":
                e["dtype"] = rng.choice(["F8", "f32", "I32", "F64", "BOOL", "", 5, None, "U8"])
                if e["dtype"] == header[t]["dtype"]:
                    continue
            elif kind == "shape":
                s = list(e["shape"])
                choice = rng.randrange(7)
                if choice == 0: s = s[::-1]
                elif choice == 1: s = [-x for x in s]
                elif choice == 2: s = s + [2]
                elif choice == 3: s = [0] + s
                elif choice == 4: s = [2**62] * len(s)
                elif choice == 5: s = "bad"
                else: s = [x * 2 for x in s]
                if s == e["shape"]:
                    continue
                e["shape"] = s
            elif kind == "offsets":
                b, en = e["data_offsets"]
                e["data_offsets"] = rng.choice([[en, b], [b, en, en], [b], [-1, en - b - 1], [b + 1, en + 1] if en + 1 <= len(data) else [b - 1, en - 1],
                                                [b, 2**63], [2**64, 2**64 + en - b], [float(b) + 0.5, en], "x"])
                if e["data_offsets"] == header[t]["data_offsets"]:
                    continue
            elif kind == "missing":
                del h[t]
                add(f"missing:{t}", REJECT, st_join(h, data))
                continue
            elif kind == "dup":
                # A second entry for the same name, textually, with other offsets.
                other = header[rng.choice(names)]
                text = json.dumps(h, separators=(",", ":"))
                dup = json.dumps({t: other}, separators=(",", ":"))[1:-1]
                text = text[:-1] + "," + dup + "}"
                add(f"dup:{t}", REJECT if other != header[t] else EITHER, st_join(None, data, text.encode()))
                continue
            elif kind == "overlap":
                o = header[rng.choice(names)]
                if o is header[t] or o["data_offsets"][1] - o["data_offsets"][0] < 4:
                    continue
                span = e["data_offsets"][1] - e["data_offsets"][0]
                b = o["data_offsets"][0] + 4
                if b + span > len(data):
                    continue
                e["data_offsets"] = [b, b + span]
            elif kind == "range":
                span = e["data_offsets"][1] - e["data_offsets"][0]
                b = len(data) - span + rng.choice([1, 4, 1000, 2**40])
                e["data_offsets"] = [b, b + span]
            h[t] = e
            add(f"{kind}:{t}", expect, st_join(h, data))
        # Accepted layouts: an extra tensor, a vector as [1, n], a gap, metadata.
        h = dict(header)
        h["extra.unused"] = {"dtype": "F32", "shape": [1], "data_offsets": [len(data), len(data) + 4]}
        add("extra-tensor", ACCEPT, st_join(h, data + struct.pack("<f", 1.0)))
        vec = [t for t in names if len(header[t]["shape"]) == 1]
        if vec:
            h = dict(header); e = dict(h[vec[0]]); e["shape"] = [1] + e["shape"]; h[vec[0]] = e
            add("vector-as-1xn", ACCEPT, st_join(h, data))
        last = max(names, key=lambda t: header[t]["data_offsets"][1])
        h = dict(header); e = dict(h[last]); b, en = e["data_offsets"]; e["data_offsets"] = [b + 8, en + 8]; h[last] = e
        add("gap-before-last", EITHER, st_join(h, data[:b] + b"\x00" * 8 + data[b:]))
        h = dict(header); h["__metadata__"] = {"format": 1, "x": [1]}
        add("metadata-not-strings", EITHER, st_join(h, data))
        # Byte flips in the data section: harmless unless a weight becomes NaN/Inf.
        for i in range(45):
            blob = bytearray(raw)
            t = rng.choice(names)
            e = header[t]
            b, en = e["data_offsets"]
            if en == b:
                continue
            pos = rng.randrange(b, en)
            if i % 3 == 0:
                # Force a non-finite value: exponent bits all ones.
                size = {"F32": 4, "F16": 2, "BF16": 2}[e["dtype"]]
                start = b + ((pos - b) // size) * size
                if e["dtype"] == "F32":
                    blob[8 + n + start:8 + n + start + 4] = struct.pack("<f", rng.choice([math.nan, math.inf, -math.inf]))
                elif e["dtype"] == "F16":
                    blob[8 + n + start:8 + n + start + 2] = rng.choice([b"\x00\x7e", b"\x00\x7c", b"\x00\xfc"])
                else:
                    blob[8 + n + start:8 + n + start + 2] = rng.choice([b"\xc0\x7f", b"\x80\x7f", b"\x80\xff"])
            else:
                blob[8 + n + pos] ^= 1 << rng.randrange(8)
            bad = nonfinite_after_flip(e["dtype"], bytes(blob[8 + n:]), e, pos)
            # A NaN/Inf weight: Orochi checks what reaches the logits (forward and generate stop at the
            # first non-finite logit; `inspect` counts non-finite weights), so a flip in a row the
            # three ids never read may pass; a forward with non-finite logits is a silent success.
            add(f"flip:{t}@{pos}{':nonfinite' if bad else ''}", EITHER if bad else ACCEPT, bytes(blob))
    # Shards: the index names a missing file, a file outside the folder, a tensor absent from its shard.
    index = json.loads(read(os.path.join(SHARDED_FIX, "model.safetensors.index.json")))
    wm = index["weight_map"]
    keys = sorted(wm)
    for name, mutate, expect in [
        ("index-missing-file", lambda m: m.__setitem__(keys[0], "model-00009-of-00009.safetensors"), REJECT),
        ("index-outside", lambda m: m.__setitem__(keys[1], "../../etc/passwd"), REJECT),
        ("index-absolute", lambda m: m.__setitem__(keys[1], "/etc/passwd"), REJECT),
        ("index-wrong-shard", lambda m: m.__setitem__(keys[2], wm[keys[-1]] if wm[keys[-1]] != wm[keys[2]] else wm[keys[0]]), REJECT),
        ("index-missing-tensor", lambda m: m.pop(keys[3]), REJECT),
        ("index-extra-tensor", lambda m: m.__setitem__("extra.weight", wm[keys[0]]), REJECT),
        ("index-empty", lambda m: m.clear(), REJECT),
    ]:
        m = dict(wm)
        mutate(m)
        cases.append(Case("safetensors", f"sharded/{name}", expect, forward(),
                          {"m/model.safetensors.index.json": jdump({"metadata": {}, "weight_map": m})}, base=SHARDED_FIX, check_npy=True))
    for text in [b"", b"[]", b'{"weight_map": 5}', b'{"weight_map": {"a": 1}}', b"{"]:
        cases.append(Case("safetensors", f"sharded/index={text[:16]!r}", REJECT, forward(), {"m/model.safetensors.index.json": text}, base=SHARDED_FIX))
    return cases


# ---------------------------------------------------------------------------------------------
# config.json. Rule: a structural key (a size that fixes a tensor's shape) changed in any way,
# deleted without a default that gives the same value, or given a wrong type, must be refused;
# so must an unknown model_type, activation or rope type, and non-finite or non-positive
# epsilons / theta. Optional keys deleted fall back to defaults (accepted when the default
# fits the checkpoint). Changes to keys that do not change shapes (eps, theta within range,
# token ids, unknown keys) may go either way but must not crash.

LLAMA_STRUCT = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size"]
MAMBA_STRUCT = ["hidden_size", "num_hidden_layers", "vocab_size", "state_size", "conv_kernel", "time_step_rank", "intermediate_size"]


def gen_config(rng, arch):
    cases = []
    fam = "config-" + arch
    bases = [LLAMA_FIX, SHIPPED_LLAMA] if arch == "llama" else [MAMBA_FIX, SHIPPED_MAMBA]
    struct_keys = LLAMA_STRUCT if arch == "llama" else MAMBA_STRUCT
    for base in bases:
        tag = os.path.basename(base)
        cfg = json.loads(read(os.path.join(base, "config.json")))
        # Shipped models are 10 MB: generate (a token) rather than forward over many ids.
        cmd = forward() if base in (LLAMA_FIX, MAMBA_FIX) else ["generate", "--model", "m", "--prompt-ids", "1 5 9", "--max-tokens", "2", "--temperature", "0", "--output-ids", "--threads", "1"]
        check = cmd[0] == "forward"

        def add(name, expect, obj=None, text=None):
            blob = text if text is not None else jdump(obj)
            cases.append(Case(fam, f"{tag}/{name}", expect, cmd, {"m/config.json": blob}, base=base, check_npy=check))

        add("unchanged", ACCEPT, cfg)
        keys = sorted(set(cfg) | set(struct_keys) | {"rms_norm_eps", "rope_theta", "max_position_embeddings", "tie_word_embeddings",
                                                      "hidden_act", "model_type", "bos_token_id", "eos_token_id"} if arch == "llama" else
                      set(cfg) | set(struct_keys) | {"layer_norm_epsilon", "expand", "use_bias", "use_conv_bias", "tie_word_embeddings", "hidden_act", "model_type"})
        values = BAD_VALUES
        for key in keys:
            present = key in cfg
            for v in values:
                c = dict(cfg)
                c[key] = v
                if present and cfg[key] == v and type(cfg[key]) == type(v):
                    continue
                cases.append(None)  # placeholder, replaced below
                cases[-1] = Case(fam, f"{tag}/{key}={json.dumps(v)}", expect_config(arch, cfg, key, v), cmd, {"m/config.json": jdump(c)}, base=base, check_npy=check)
            if present:
                c = dict(cfg); del c[key]
                add(f"delete:{key}", expect_config(arch, cfg, key, "<deleted>"), c)
            # In-range but different structural value.
            if key in struct_keys and isinstance(cfg.get(key), int):
                for v in [cfg[key] + 1, max(1, cfg[key] // 2), cfg[key] * 2]:
                    if v != cfg[key]:
                        c = dict(cfg); c[key] = v
                        add(f"{key}={v}", EITHER if key == "num_hidden_layers" and v < cfg[key] else REJECT, c)
        # Whole-file damage.
        text = read(os.path.join(base, "config.json"))
        for name, blob in [("empty", b""), ("array", b"[]"), ("truncated", text[: len(text) // 2]), ("trailing-comma", text.rstrip()[:-1].rstrip() + b",}"),
                           ("bom", b"\xef\xbb\xbf" + text), ("nul", text.replace(b"{", b"{\x00", 1)), ("deep", b"[" * 100000 + b"]" * 100000),
                           ("deep-object", b'{"a":' * 20000 + b"1" + b"}" * 20000), ("latin1", text.replace(b'"', b"\xe9", 1)), ("dup-key", text.rstrip()[:-1] + b', "hidden_size": 3}')]:
            expect = EITHER if name == "bom" else REJECT
            add(name, expect, text=blob)
        # Rope / activation / type variants (llama).
        if arch == "llama":
            for name, patch, expect in [
                ("rope-unknown", {"rope_scaling": {"rope_type": "yarn", "factor": 2.0}}, REJECT),
                ("rope-linear-no-factor", {"rope_scaling": {"type": "linear"}}, REJECT),
                ("rope-linear-factor0", {"rope_scaling": {"type": "linear", "factor": 0}}, REJECT),
                ("rope-linear-factor-neg", {"rope_scaling": {"type": "linear", "factor": -2}}, REJECT),
                ("rope-linear-factor-huge", {"rope_scaling": {"type": "linear", "factor": 1e308}}, EITHER),
                ("rope-llama3-zero", {"rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 0, "high_freq_factor": 0, "original_max_position_embeddings": 0}}, REJECT),
                ("rope-llama3-equal", {"rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 4, "high_freq_factor": 4, "original_max_position_embeddings": 8192}}, REJECT),
                ("rope-theta-zero", {"rope_theta": 0, "rope_parameters": None}, REJECT),
                ("rope-theta-neg", {"rope_theta": -10000, "rope_parameters": None}, REJECT),
                ("rope-params-theta-neg", {"rope_parameters": {"rope_type": "default", "rope_theta": -1.0}}, REJECT),
                ("rope-params-string", {"rope_parameters": "default"}, REJECT),
                ("act-gelu", {"hidden_act": "gelu"}, REJECT),
                ("type-mistral", {"model_type": "mistral"}, ACCEPT),
                ("type-gpt2", {"model_type": "gpt2"}, REJECT),
                ("window-4", {"sliding_window": 4, "model_type": "mistral"}, EITHER),
                ("window-neg", {"sliding_window": -4, "model_type": "mistral"}, EITHER),
                ("window-huge", {"sliding_window": 2**63 - 1, "model_type": "mistral"}, EITHER),
                ("attention-bias", {"attention_bias": True}, REJECT),
                ("eps-nan-string", {"rms_norm_eps": "nan"}, REJECT),
                ("eps-neg", {"rms_norm_eps": -1.0}, REJECT),
                ("eps-zero", {"rms_norm_eps": 0.0}, EITHER),
                ("maxpos-1", {"max_position_embeddings": 1}, EITHER),
                ("heads-not-divisible", {"num_key_value_heads": 3}, REJECT),
                ("head-dim-odd", {"head_dim": 3}, REJECT),
            ]:
                c = dict(cfg)
                if "rope_scaling" in patch and "rope_parameters" in cfg:
                    # rope_parameters (transformers 5) take precedence: patch it instead.
                    patch = dict(patch, rope_parameters=dict(patch["rope_scaling"], rope_theta=10000.0))
                    del patch["rope_scaling"]
                c.update(patch)
                add(name, expect, c)
        else:
            for name, patch, expect in [
                ("rank-auto", {"time_step_rank": "auto"}, EITHER),
                ("rank-string", {"time_step_rank": "big"}, REJECT),
                ("expand-ignored", {"expand": 7}, EITHER),
                ("no-intermediate-expand-0", {"intermediate_size": None, "expand": 0}, REJECT),
                ("use-bias", {"use_bias": True}, REJECT),
                ("eps-neg", {"layer_norm_epsilon": -1.0}, REJECT),
                ("act-gelu", {"hidden_act": "gelu"}, REJECT),
                ("type-llama", {"model_type": "llama"}, REJECT),
                # Orochi's documented choice: no lm_head.weight in the checkpoint → the embedding (tested).
                ("untied", {"tie_word_embeddings": False}, EITHER),
            ]:
                c = dict(cfg); c.update(patch)
                c = {k: v for k, v in c.items() if v is not None}
                add(name, expect, c)
    return cases


# config.json of a Jamba checkpoint. Rule: a size or layer-pattern key that no longer matches the
# tensors must be refused (values of the wrong type, zero, negative or huge included); a change
# that leaves the tensors' names and shapes the same may load (another period with the same
# attention and expert layers, another num_experts_per_tok within 1…num_experts, a smaller
# num_hidden_layers, a deleted key whose transformers default equals the file's value); bias
# flags must agree with the tensors present; ε must be a number ≥ 0.
JAMBA_DEFAULTS = {"num_key_value_heads": 8, "num_experts": 16, "num_experts_per_tok": 2, "expert_layer_period": 2,
                  "expert_layer_offset": 1, "attn_layer_period": 8, "attn_layer_offset": 4, "mamba_d_state": 16,
                  "mamba_d_conv": 4, "mamba_expand": 2, "mamba_dt_rank": "auto", "mamba_conv_bias": True,
                  "mamba_proj_bias": False, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                  "num_attention_heads": 32, "vocab_size": 65536, "tie_word_embeddings": False}
JAMBA_STRUCT = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "head_dim", "vocab_size", "num_experts", "num_experts_per_tok", "expert_layer_period", "expert_layer_offset",
                "attn_layer_period", "attn_layer_offset", "mamba_d_state", "mamba_d_conv", "mamba_expand", "mamba_dt_rank"]


def jamba_shape(cfg):
    """What the tensors of a Jamba config are: None if the config is invalid."""
    def int_(k):
        v = cfg.get(k, JAMBA_DEFAULTS.get(k))
        return v if isinstance(v, int) and not isinstance(v, bool) else None
    keys = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "vocab_size", "num_experts", "num_experts_per_tok", "expert_layer_period", "expert_layer_offset",
            "attn_layer_period", "attn_layer_offset", "mamba_d_state", "mamba_d_conv", "mamba_expand"]
    v = {k: int_(k) for k in keys}
    if any(x is None or x <= 0 for k, x in v.items() if not k.endswith("offset")) or any(v[k] is None or v[k] < 0 for k in keys if k.endswith("offset")):
        return None
    if v["attn_layer_offset"] >= v["attn_layer_period"] or v["expert_layer_offset"] >= v["expert_layer_period"]:
        return None
    if v["num_experts_per_tok"] > v["num_experts"] or v["num_attention_heads"] % v["num_key_value_heads"]:
        return None
    head_dim = cfg.get("head_dim", None)
    if head_dim is None:
        head_dim = v["hidden_size"] // v["num_attention_heads"]
    if not isinstance(head_dim, int) or isinstance(head_dim, bool) or head_dim <= 0 or max(v.values()) >= 2**63 or head_dim >= 2**63:
        return None
    rank = cfg.get("mamba_dt_rank", "auto")
    rank = -(-v["hidden_size"] // 16) if rank == "auto" else rank
    if not isinstance(rank, int) or isinstance(rank, bool) or rank <= 0 or rank >= 2**63:
        return None
    if v["num_hidden_layers"] > 2**20:   # so many layers cannot match the file's (and are not listed here)
        return ("layers", v["num_hidden_layers"])
    layers = [("A" if i % v["attn_layer_period"] == v["attn_layer_offset"] else "M")
              + ("E" if v["num_experts"] > 1 and i % v["expert_layer_period"] == v["expert_layer_offset"] else "D")
              for i in range(v["num_hidden_layers"])]
    return (v["hidden_size"], v["intermediate_size"], v["num_attention_heads"], v["num_key_value_heads"], head_dim,
            v["vocab_size"], v["num_experts"] if "E" in "".join(layers) else 1, v["mamba_d_state"], v["mamba_d_conv"],
            v["mamba_expand"], rank, tuple(layers))


def gen_config_jamba(rng):
    cases = []
    fam = "config-jamba"
    for base in [JAMBA_FIX, JAMBA_F16_FIX]:
        tag = os.path.basename(base)
        cfg = json.loads(read(os.path.join(base, "config.json")))
        original = jamba_shape(cfg)

        def expect_struct(c):
            shape = jamba_shape(c)
            if shape is None:
                return REJECT
            if shape == original:
                return EITHER
            # Fewer layers with the same pattern prefix: the extra tensors go unused.
            if shape[:-1] == original[:-1] and len(shape[-1]) < len(original[-1]) and original[-1][:len(shape[-1])] == shape[-1]:
                return EITHER
            return REJECT

        def add(name, expect, obj=None, text=None):
            blob = text if text is not None else jdump(obj)
            cases.append(Case(fam, f"{tag}/{name}", expect, forward(), {"m/config.json": blob}, base=base, check_npy=True))

        add("unchanged", ACCEPT, cfg)
        keys = sorted(set(cfg) | set(JAMBA_STRUCT) | {"rms_norm_eps", "max_position_embeddings", "tie_word_embeddings",
                                                       "hidden_act", "model_type", "mamba_conv_bias", "mamba_proj_bias"})
        for key in keys:
            variants = [(f"{key}={json.dumps(v)}", v) for v in BAD_VALUES] + [(f"delete:{key}", "<deleted>")]
            if isinstance(cfg.get(key), int) and not isinstance(cfg.get(key), bool):
                variants += [(f"{key}={v}", v) for v in {cfg[key] + 1, max(0, cfg[key] - 1), cfg[key] * 2} if v != cfg[key]]
            for name, v in variants:
                c = dict(cfg)
                if v == "<deleted>" or v is None:
                    c.pop(key, None)       # null reads as absent, as transformers has it
                else:
                    c[key] = v
                if v != "<deleted>" and key in cfg and cfg[key] == v and type(cfg[key]) == type(v):
                    continue
                if key in JAMBA_STRUCT:
                    expect = expect_struct(c)
                elif key == "rms_norm_eps":
                    val = c.get(key, 1e-6)
                    expect = REJECT if isinstance(val, bool) or not isinstance(val, (int, float)) or val < 0 or val != val else EITHER
                elif key == "max_position_embeddings":
                    val = c.get(key, 262144)
                    expect = REJECT if isinstance(val, bool) or not isinstance(val, int) or val <= 0 else EITHER
                elif key in ("mamba_conv_bias", "mamba_proj_bias"):
                    val = c.get(key, JAMBA_DEFAULTS[key])
                    expect = EITHER if val is cfg.get(key, JAMBA_DEFAULTS[key]) else REJECT
                elif key == "tie_word_embeddings":
                    val = c.get(key, False)
                    tied = cfg.get(key, False)
                    expect = REJECT if not isinstance(val, bool) else (EITHER if val or val == tied else REJECT)
                elif key == "hidden_act":
                    expect = EITHER if c.get(key, "silu") == "silu" else REJECT
                elif key == "model_type":
                    expect = REJECT
                else:
                    expect = EITHER
                add(name, expect, c)
        text = read(os.path.join(base, "config.json"))
        for name, blob in [("empty", b""), ("array", b"[]"), ("truncated", text[: len(text) // 2]),
                           ("trailing-comma", text.rstrip()[:-1].rstrip() + b",}"), ("nul", text.replace(b"{", b"{\x00", 1)),
                           ("deep", b"[" * 100000 + b"]" * 100000), ("dup-key", text.rstrip()[:-1] + b', "hidden_size": 3}')]:
            add(name, REJECT, text=blob)
        for name, patch, expect in [
            ("period-0", {"attn_layer_period": 0}, REJECT), ("offset-outside", {"attn_layer_offset": cfg["attn_layer_period"]}, REJECT),
            ("experts-per-tok-over", {"num_experts_per_tok": cfg["num_experts"] + 1}, REJECT),
            ("experts-per-tok-1", {"num_experts_per_tok": 1}, EITHER),
            ("rank-auto", {"mamba_dt_rank": "auto"}, EITHER if jamba_shape(dict(cfg, mamba_dt_rank="auto")) == original else REJECT),
            ("rank-string", {"mamba_dt_rank": "wide"}, REJECT), ("act-gelu", {"hidden_act": "gelu"}, REJECT),
            ("type-mamba", {"model_type": "mamba"}, REJECT), ("local-experts-alias", {"num_local_experts": cfg["num_experts"]}, EITHER),
        ]:
            c = dict(cfg); c.update(patch)
            add(name, expect, c)
    return cases


def expect_config(arch, cfg, key, v):
    # A key set to null reads as absent (transformers' semantics): the same rule as a deletion.
    deleted = v == "<deleted>" or v is None
    structural = LLAMA_STRUCT if arch == "llama" else MAMBA_STRUCT
    if key in structural:
        if deleted:
            if arch == "llama" and key == "head_dim":
                return ACCEPT if cfg["hidden_size"] // cfg["num_attention_heads"] == cfg.get("head_dim") else REJECT
            if arch == "llama" and key == "num_key_value_heads":
                return ACCEPT if cfg["num_attention_heads"] == cfg.get("num_key_value_heads") else REJECT
            if arch == "mamba" and key == "time_step_rank":
                return ACCEPT if cfg.get(key) == "auto" or (cfg["hidden_size"] + 15) // 16 == cfg.get(key) else REJECT
            if arch == "mamba" and key == "intermediate_size":
                return ACCEPT if cfg.get("expand", 2) * cfg["hidden_size"] == cfg.get("intermediate_size") else REJECT
            if arch == "mamba" and key in ("state_size", "conv_kernel"):
                return ACCEPT if cfg.get(key) == {"state_size": 16, "conv_kernel": 4}[key] else REJECT
            return REJECT
        if arch == "mamba" and key == "time_step_rank" and v == "auto":
            return EITHER
        if isinstance(v, float) and v == int(v) and int(v) == cfg.get(key):
            return EITHER
        # Fewer layers than the checkpoint holds: the extra tensors go unused, as transformers
        # allows (with a warning): either.
        if key == "num_hidden_layers" and isinstance(v, int) and not isinstance(v, bool) and 0 < v < cfg.get(key, 0):
            return EITHER
        return REJECT
    if key == "model_type":
        return REJECT
    if key in ("rms_norm_eps", "layer_norm_epsilon"):
        if deleted:
            return EITHER
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            return REJECT
        return EITHER
    if key == "rope_theta":
        if deleted:
            return EITHER
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            return REJECT if "rope_parameters" not in cfg else EITHER
        return EITHER
    if key == "max_position_embeddings":
        if deleted:
            return ACCEPT
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            return REJECT
        return EITHER
    if key == "tie_word_embeddings":
        tied = cfg.get(key, arch == "mamba")
        if deleted:
            return ACCEPT if tied == (arch == "mamba") else REJECT
        if v is True and not tied:
            return EITHER   # tying an untied checkpoint ignores lm_head.weight, as transformers does
        return ACCEPT if v is tied else REJECT
    if key == "hidden_act":
        return EITHER if deleted or v is None or v == "silu" else REJECT
    if key in ("use_bias", "use_conv_bias"):
        if deleted or v is None:
            return EITHER
        if not isinstance(v, bool):
            return REJECT
        return REJECT if (key == "use_bias" and v) else EITHER
    if key == "expand":
        if "intermediate_size" in cfg:
            return EITHER if deleted or (isinstance(v, int) and not isinstance(v, bool)) or v is None else REJECT
        return REJECT
    if key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        return EITHER
    if key == "rope_parameters" or key == "rope_scaling":
        return EITHER if deleted or v == {} else REJECT
    if key in ("attention_bias", "mlp_bias"):
        return REJECT if v is True else EITHER
    return EITHER


# ---------------------------------------------------------------------------------------------
# tokenizer.model (protobuf). Rule: duplicate pieces, byte_fallback without all 256 byte pieces,
# an unk id outside the vocabulary or on a non-unknown piece, unknown piece types, a length
# running past the end, and truncation inside a field must be refused. Random bit flips and
# truncation at a field boundary may be accepted (a flip in a score or in a piece's text gives
# another valid model) but must never crash or hang.

def varint(b, i):
    v = s = 0
    while True:
        if i >= len(b):
            raise ValueError("eof")
        c = b[i]; i += 1
        v |= (c & 0x7F) << s; s += 7
        if c < 0x80:
            return v, i


def enc_varint(v):
    out = bytearray()
    while True:
        c = v & 0x7F; v >>= 7
        if v:
            out.append(c | 0x80)
        else:
            out.append(c)
            return bytes(out)


def pb_fields(b):
    i, out = 0, []
    while i < len(b):
        start = i
        tag, i = varint(b, i)
        wt = tag & 7
        if wt == 0:
            _, i = varint(b, i)
        elif wt == 1:
            i += 8
        elif wt == 5:
            i += 4
        elif wt == 2:
            n, i = varint(b, i); i += n
        else:
            raise ValueError("wire type")
        out.append((tag >> 3, wt, b[start:i]))
    return out


def pb_ld(field, body):
    return enc_varint(field << 3 | 2) + enc_varint(len(body)) + body


def pb_body(raw):
    _, i = varint(raw, 0)
    n, i = varint(raw, i)
    return raw[i:i + n]


def piece_msg(text, score=0.0, type_=None):
    body = pb_ld(1, text) + enc_varint(2 << 3 | 5) + struct.pack("<f", score)
    if type_ is not None:
        body += enc_varint(3 << 3) + enc_varint(type_)
    return pb_ld(1, body)


def set_trainer(fields, field, value):
    """Sets a varint field of TrainerSpec (field 2 of ModelProto)."""
    out = []
    for f, wt, raw in fields:
        if f == 2:
            body = pb_body(raw)
            body = b"".join(r for ff, _, r in pb_fields(body) if ff != field) + enc_varint(field << 3) + enc_varint(value)
            raw = pb_ld(2, body)
        out.append((f, wt, raw))
    return out


def gen_tokenizer_model(rng):
    cases = []
    raw = read(os.path.join(SHIPPED_LLAMA, "tokenizer.model"))
    fields = pb_fields(raw)
    pieces = [r for f, _, r in fields if f == 1]
    texts = ["ファイルを開くには", "Hello, world 123", "  \t\n", "😀 ÷ \u0001"]

    def add(name, expect, blob, text=None):
        t = text or rng.choice(texts)
        cases.append(Case("tokenizer-model", name, expect, ["tokenize", "--tokenizer", "tok.model", "--text", t], {"tok.model": blob}))

    add("unchanged", ACCEPT, raw)
    for i in range(130):
        b = bytearray(raw)
        for _ in range(rng.choice([1, 1, 2, 8])):
            p = rng.randrange(len(b))
            b[p] ^= 1 << rng.randrange(8)
        add(f"flip#{i}", EITHER, bytes(b))
    for i in range(50):
        cut = rng.randrange(len(raw))
        add(f"truncate@{cut}", EITHER, raw[:cut])
    add("truncate@0", REJECT, b"")
    # Field boundaries: a cut exactly after a field leaves a valid (smaller) model: either.
    offs, pos = [], 0
    for _, _, r in fields:
        pos += len(r); offs.append(pos)
    for cut in rng.sample(offs[:-1], 10):
        add(f"boundary@{cut}", EITHER, raw[:cut])
    # Duplicate pieces (sentencepiece refuses them).
    for i in range(15):
        k = rng.randrange(259, len(pieces))
        add(f"dup-piece#{k}", REJECT, raw + pieces[k])
    # byte_fallback (trainer field 35) without the byte pieces; byte pieces without byte_fallback.
    no_bytes = [(f, wt, r) for f, wt, r in fields if not (f == 1 and b"<0x" in r)]
    add("byte-fallback-without-bytes", REJECT, b"".join(r for _, _, r in no_bytes))
    add("bytes-without-byte-fallback", EITHER, b"".join(r for _, _, r in set_trainer(fields, 35, 0)))
    some_bytes = [(f, wt, r) for f, wt, r in fields if not (f == 1 and b"<0x4" in r)]
    add("byte-fallback-missing-16-bytes", REJECT, b"".join(r for _, _, r in some_bytes))
    # unk_id (40), bos_id (41), eos_id (42), pad_id (43) out of range or on the wrong piece.
    for fid, name in [(40, "unk"), (41, "bos"), (42, "eos"), (43, "pad")]:
        # sentencepiece takes the unknown id from the UNKNOWN piece and BOS/EOS from their pieces, not
        # from these numbers; Orochi does the same for unk and adds no BOS/EOS whose id is out of range.
        for v, expect in [(len(pieces), EITHER), (2**31 - 1, EITHER), (2**32 + 5, EITHER), (2**64 - 1, EITHER), (100, EITHER)]:
            add(f"{name}_id={v}", expect, b"".join(r for _, _, r in set_trainer(fields, fid, v)))
    # model_type (3): unknown values.
    for v in [0, 5, 99, 2**40]:
        add(f"model_type={v}", REJECT, b"".join(r for _, _, r in set_trainer(fields, 3, v)))
    # Piece types: unknown (7, 0), a second UNKNOWN, empty text.
    for t in [0, 7, 255, 2]:
        add(f"extra-piece-type={t}", REJECT, raw + piece_msg(b"\xe2\x96\x81zzq", -5.0, t))
    add("empty-piece", REJECT, raw + piece_msg(b"", -5.0))
    add("invalid-utf8-piece", EITHER, raw + piece_msg(b"\xff\xfe", -5.0))
    add("nan-score", EITHER, raw + piece_msg(b"\xe2\x96\x81zzq", math.nan))
    # Length prefixes running past the end, and a huge varint.
    add("length-past-end", REJECT, raw + b"\x0a" + enc_varint(2**20))
    add("length-huge", REJECT, raw + b"\x0a" + enc_varint(2**63))
    add("varint-11-bytes", REJECT, raw + b"\x08" + b"\xff" * 10 + b"\x01")
    add("wire-type-7", REJECT, raw + b"\x0f")
    add("group-start", REJECT, raw + b"\x0b")
    add("pieces-only-zero", REJECT, b"".join(r for f, _, r in fields if f != 1))
    return cases


# ---------------------------------------------------------------------------------------------
# tokenizer.json. Rule: a wrong type for a known field, a negative or huge id (beyond 2^31 or far
# beyond the vocabulary), a missing model, unknown component types, a merge naming pieces not in
# the vocabulary, and invalid JSON (trailing commas, truncation) must be refused. Unknown extra
# keys and a different but valid id for an added token may go either way.

def json_paths(obj, path=()):
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from json_paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            yield from json_paths(v, path + (i,))


def set_path(obj, path, value, delete=False):
    obj = json.loads(json.dumps(obj))
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    if delete:
        if isinstance(cur, dict):
            del cur[path[-1]]
        else:
            cur.pop(path[-1])
    else:
        cur[path[-1]] = value
    return obj


def gen_tokenizer_json(rng):
    cases = []
    for fix in HF_FIXES:
        tag = os.path.basename(os.path.dirname(fix))
        text = read(fix)
        tok = json.loads(text)

        def add(name, expect, blob):
            cases.append(Case("tokenizer-json", f"{tag}/{name}", expect,
                              ["tokenize", "--tokenizer", "tok.json", "--text", "Hello ファイル 123 😀", "--add-special"], {"tok.json": blob}))

        add("unchanged", ACCEPT, text)
        paths = [p for p, v in json_paths(tok) if p and not (len(p) >= 2 and p[-2] == "vocab" and isinstance(p[-1], str) and rng.random() < 0.9)]
        # Known fields with wrong types, ids out of range, deletions.
        interesting = [p for p in paths if any(k in p for k in ("model", "added_tokens", "normalizer", "pre_tokenizer", "decoder", "post_processor"))]
        for p in rng.sample(interesting, min(45, len(interesting))):
            leaf = p[-1]
            value = rng.choice([-1, 2**31, 2**62, -(2**63), "x", None, [], {}, 1.5, True])
            exp = EITHER
            if leaf in ("id", "unk_id") or (len(p) >= 2 and p[-2] == "vocab"):
                value = rng.choice([-1, -(2**31), 2**31, 2**40, 2**62, 2**63 - 1, "1", 1.5])
                exp = REJECT
            elif leaf == "type":
                value = rng.choice(["Bogus", 5, None, ""])
                exp = REJECT
            add(f"{'.'.join(map(str, p))}={json.dumps(value)}", exp, json.dumps(set_path(tok, p, value), ensure_ascii=False).encode())
        for p in rng.sample(interesting, min(15, len(interesting))):
            add(f"delete:{'.'.join(map(str, p))}", EITHER, json.dumps(set_path(tok, p, None, delete=True), ensure_ascii=False).encode())
        # Added tokens: huge, negative, duplicate ids.
        for v in [-1, 2**31, 2**40, 2**62, 2**63 - 1]:
            t = json.loads(text)
            t.setdefault("added_tokens", []).append({"id": v, "content": "<zz>", "special": True, "normalized": False,
                                                   "lstrip": False, "rstrip": False, "single_word": False})
            add(f"added-id={v}", REJECT, json.dumps(t, ensure_ascii=False).encode())
        # A merge naming unknown pieces; merges of the wrong shape.
        m = tok.get("model", {})
        if isinstance(m.get("merges"), list):
            for name, merge in [("unknown", "qqq zzz"), ("one-part", "abc"), ("three-parts", ["a", "b", "c"]), ("number", 5)]:
                t = json.loads(text); t["model"]["merges"] = [merge] + t["model"]["merges"]
                add(f"merge-{name}", REJECT, json.dumps(t, ensure_ascii=False).encode())
        if isinstance(m.get("vocab"), list):
            t = json.loads(text); t["model"]["vocab"][3] = ["x", "notanumber"]
            add("unigram-score-string", REJECT, json.dumps(t, ensure_ascii=False).encode())
            t = json.loads(text); t["model"]["vocab"] = []
            add("unigram-empty-vocab", REJECT, json.dumps(t, ensure_ascii=False).encode())
        # Text-level damage.
        for i in range(12):
            cut = rng.randrange(len(text))
            add(f"truncate@{cut}", REJECT, text[:cut])
        commas = [mm.start() for mm in re.finditer(rb"[\]}]", text)]
        for i in range(8):
            at = rng.choice(commas)
            damaged = text[:at] + b"," + text[at:]
            try:                        # a "]" or "}" inside a string: the comma is text, not syntax
                json.loads(damaged); expect = EITHER
            except ValueError:
                expect = REJECT
            add(f"trailing-comma@{at}", expect, damaged)
        add("empty", REJECT, b"")
        add("array", REJECT, b"[]")
        add("no-model", REJECT, json.dumps({k: v for k, v in tok.items() if k != "model"}).encode())
        add("deep", REJECT, b'{"model":' + b"[" * 50000 + b"]" * 50000 + b"}")
    return cases


# ---------------------------------------------------------------------------------------------
# Snapshots. Rule: any change to the signature, identity, fingerprint, payload length or
# checksum, truncation, trailing bytes, and a payload with NaN/Inf (checksum recomputed) must be
# refused; so must a position beyond the model's context or beyond 2^63. For Llama the
# position fixes the payload size, so any other position must be refused. For Mamba the
# position is not tied to the payload: another position up to the context limit may go either
# way.

def snap_fields(b):
    idlen = struct.unpack_from("<Q", b, 8)[0]
    o = 16 + idlen
    fp, pos, plen = struct.unpack_from("<QQQ", b, o)
    return {"idlen": idlen, "fp_at": o, "pos_at": o + 8, "len_at": o + 16, "payload_at": o + 24, "pos": pos, "plen": plen}


def fnv1a(data):
    h = 0xcbf29ce484222325
    for x in data:
        h = ((h ^ x) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def gen_snapshot(rng, binary, scratch):
    cases = []
    for arch, model in [("llama", SHIPPED_LLAMA), ("mamba", SHIPPED_MAMBA)]:
        path = os.path.join(scratch, f"base-{arch}.state")
        r = subprocess.run([binary, "generate", "--model", model, "--prompt-ids", "1 5 9 12", "--max-tokens", "0", "--save-state", path, "--threads", "1"],
                           capture_output=True, timeout=120)
        if r.returncode != 0:
            print(f"cannot make the base snapshot of {arch}: {r.stderr.decode(errors='replace')}", file=sys.stderr)
            continue
        raw = read(path)
        f = snap_fields(raw)
        pa, plen = f["payload_at"], f["plen"]
        payload = raw[pa:pa + plen]
        cmd = ["generate", "--model", os.path.abspath(model), "--load-state", "s.state", "--max-tokens", "2", "--temperature", "0", "--output-ids", "--threads", "1"]

        def add(name, expect, blob):
            cases.append(Case("snapshot", f"{arch}/{name}", expect, cmd, {"s.state": blob}))

        def with_u64(at, v, b=raw):
            b = bytearray(b); struct.pack_into("<Q", b, at, v & 0xFFFFFFFFFFFFFFFF); return bytes(b)

        def resum(b):
            ff = snap_fields(b)
            p = b[ff["payload_at"]:ff["payload_at"] + ff["plen"]]
            return b[:ff["payload_at"] + ff["plen"]] + struct.pack("<Q", fnv1a(p))

        add("unchanged", ACCEPT, raw)
        for v in [0, 1, 3, 5, 1000, 1023, 1024, 1025, 4096, 2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64 - 1]:
            if v == f["pos"]:
                continue
            if arch == "llama":
                expect = REJECT
            else:
                expect = EITHER if v < 2**62 else REJECT
            add(f"position={v}", expect, with_u64(f["pos_at"], v))
        for v in [0, plen - 1, plen + 1, plen + 8, len(raw), 2**32, 2**63, 2**64 - 1]:
            add(f"payload-length={v}", REJECT, with_u64(f["len_at"], v))
        for v in [0, 1, 4097, 2**40, 2**63, 2**64 - 1]:
            add(f"identity-length={v}", REJECT, with_u64(8, v))
        add("fingerprint+1", REJECT, with_u64(f["fp_at"], struct.unpack_from("<Q", raw, f["fp_at"])[0] + 1))
        add("checksum-flip", REJECT, raw[:-1] + bytes([raw[-1] ^ 1]))
        add("magic", REJECT, b"OROCHIS9" + raw[8:])
        add("identity-changed", REJECT, raw[:16] + bytes([raw[16] ^ 0x20]) + raw[17:])
        add("trailing-byte", REJECT, raw + b"\x00")
        add("empty", REJECT, b"")
        for i in range(20):
            cut = rng.randrange(len(raw))
            add(f"truncate@{cut}", REJECT, raw[:cut])
        # Payload flips with the checksum recomputed: finite values are a valid (other) state.
        for i in range(25):
            b = bytearray(raw)
            k = rng.randrange(plen // 4)
            at = pa + 4 * k
            if i % 2 == 0:
                struct.pack_into("<f", b, at, rng.choice([math.nan, math.inf, -math.inf]))
                expect = REJECT
                name = f"payload-nonfinite@{k}"
            else:
                v = struct.unpack_from("<f", b, at)[0] + rng.choice([0.5, -1.0, 3.0])
                struct.pack_into("<f", b, at, v)
                expect = ACCEPT if math.isfinite(v) else REJECT
                name = f"payload-changed@{k}"
            add(name, expect, resum(bytes(b)))
        # A snapshot of the other model.
        other = "mamba" if arch == "llama" else "llama"
        cases.append(Case("snapshot", f"{arch}/other-model", REJECT, cmd[:2] + [os.path.abspath(SHIPPED_MAMBA if other == "mamba" else SHIPPED_LLAMA)] + cmd[3:], {"s.state": raw}))
    return cases


# ---------------------------------------------------------------------------------------------
# Command lines. Rule: a negative, zero (where meaningless), NaN, infinite or non-numeric value
# of a numeric flag must be refused before any work; a huge value must be refused or capped,
# never allocate past memory or loop for ever. Malformed --ids (negative, non-integer, beyond
# the vocabulary, beyond Int) must be refused. In-range values are accepted.

NUMS = ["-1", "0", "1", "2147483648", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "1e309", "nan", "NaN", "inf", "-inf",
        "", " 1", "1.5", "0x10", "1e3", "-0", "+3", "٣"]


def num_expect(flag, v):
    """What a numeric flag's value must give (the flag's own rule)."""
    def as_int():
        try:
            return int(v.strip()) if re.fullmatch(r"[+-]?[0-9]+", v) else None
        except ValueError:
            return None

    def as_float():
        try:
            x = float(v)
            return x if re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*([eE][+-]?[0-9]+)?|nan|NaN|inf|-inf)", v) else None
        except ValueError:
            return None
    i, x = as_int(), as_float()
    if v == "-0":
        return EITHER   # ArgumentParser may read "-0" as an option name
    floats = ("--temperature", "--top-p", "--repeat-penalty", "--max-seconds-per-point")
    if i is not None and not -(2**63) <= i < 2**63 and flag != "--seed" and flag not in floats:
        return REJECT   # not an Int
    if v == "0x10" and flag in floats:
        return EITHER   # Swift's Float("0x10") is the hexadecimal float 16.0
    if flag in ("--temperature", "--max-seconds-per-point") and x == math.inf:
        return EITHER   # infinite temperature: uniform sampling; no time limit per point
    rules = {
        "--max-tokens": lambda: REJECT if i is None or i < 0 else (ACCEPT if i <= 2**31 else EITHER),
        "--top-k": lambda: REJECT if i is None or i < 0 else ACCEPT,
        "--seed": lambda: REJECT if i is None or i < 0 or i >= 2**64 else ACCEPT,
        "--threads": lambda: REJECT if i is None or i < 1 else (ACCEPT if i <= 64 else EITHER),
        "--context": lambda: REJECT if i is None or i < 1 else (ACCEPT if 3 <= i <= 1024 else EITHER),   # the prompt has 3 ids
        "--stride": lambda: REJECT if i is None or i < 1 else EITHER,
        "--decode-tokens": lambda: REJECT if i is None or i < 1 else (ACCEPT if i <= 8 else EITHER),
        "--repetitions": lambda: REJECT if i is None or i < 1 else (ACCEPT if i <= 8 else EITHER),
        "--benchmark": lambda: REJECT if i is None or i < 1 else (ACCEPT if i <= 8 else EITHER),
        "--temperature": lambda: REJECT if x is None or not math.isfinite(x) or x < 0 else ACCEPT,
        "--top-p": lambda: REJECT if x is None or not math.isfinite(x) or not (0 < x <= 1) else ACCEPT,
        "--repeat-penalty": lambda: REJECT if x is None or not math.isfinite(x) or x <= 0 else ACCEPT,
        "--max-seconds-per-point": lambda: REJECT if x is None or not math.isfinite(x) or x < 0 else ACCEPT,
    }
    return rules[flag]()


def gen_cli(rng):
    cases = []
    L, M = os.path.abspath(SHIPPED_LLAMA), os.path.abspath(SHIPPED_MAMBA)
    text_file = os.path.abspath(os.path.join(ROOT, "Models/validation-sample.txt"))

    def add(name, expect, args, files=None):
        cases.append(Case("cli", name, expect, args, files))

    def gen(model, extra):
        return ["generate", "--model", model, "--prompt-ids", "1 5 9", "--max-tokens", "3", "--temperature", "0.7", "--seed", "1", "--output-ids", "--threads", "1"] + extra

    def replace(args, flag, v):
        args = list(args)
        if flag in args:
            args[args.index(flag) + 1] = v
        else:
            args += [flag, v]
        return args

    for flag in ["--max-tokens", "--temperature", "--top-k", "--top-p", "--repeat-penalty", "--seed", "--context", "--threads"]:
        for model, tag in [(L, "llama"), (M, "mamba")]:
            for v in NUMS:
                args = replace(gen(model, ["--context", "64"] if flag != "--context" else []), flag, v)
                expect = num_expect(flag, v)
                if flag == "--context" and tag == "mamba" and expect == EITHER:
                    expect = ACCEPT
                if flag == "--max-tokens" and tag == "mamba" and expect != REJECT:
                    # Mamba has no context limit: a large --max-tokens runs as long as asked (until
                    # </s>, which the first shipped Mamba happened to write early for 2^31).
                    try:
                        large = int(v) > 10**5
                    except ValueError:
                        large = True
                    if large:
                        continue
                add(f"generate/{tag}/{flag}={v!r}", expect, args)
    for flag in ["--context", "--threads"]:
        for v in NUMS:
            add(f"forward/{flag}={v!r}", num_expect(flag, v), ["forward", "--model", L, "--ids", "1 2 3", "--out", "out.npy", flag, v])
    for v in NUMS:
        if num_expect("--benchmark", v) == EITHER:
            continue   # a huge count runs as long as asked
        add(f"tokenize/--benchmark={v!r}", num_expect("--benchmark", v), ["tokenize", "--model", L, "--text", "ファイル", "--benchmark", v])
    for flag in ["--context", "--stride", "--threads"]:
        for v in NUMS:
            args = ["perplexity", "--model", M, "--file", "ppl.txt", "--context", "32", "--stride", "16", "--threads", "1"]
            add(f"perplexity/{flag}={v!r}", num_expect(flag, v), replace(args, flag, v), {"ppl.txt": "ファイルを開くには、メニューを選びます。\n".encode() * 3})
    bench = ["bench", "--model", os.path.abspath(LLAMA_FIX), "--contexts", "8", "--decode-tokens", "1", "--repetitions", "1",
             "--breakdown-contexts", "none", "--threads", "1", "--format", "csv"]
    for flag in ["--decode-tokens", "--repetitions", "--threads", "--max-seconds-per-point", "--seed"]:
        for v in NUMS:
            expect = num_expect(flag, v)
            if flag in ("--repetitions", "--decode-tokens") and expect == EITHER:
                continue   # a huge count runs as long as asked
            if flag == "--max-seconds-per-point" and v == "0":
                expect = ACCEPT
            add(f"bench/{flag}={v!r}", expect, replace(bench, flag, v))
    for v, expect in [("8", ACCEPT), ("", REJECT), ("0", REJECT), ("-8", REJECT), ("8,,16", EITHER), ("a", REJECT), ("8,x", REJECT), ("nan", REJECT),
                      ("9223372036854775807", EITHER), ("2147483648", EITHER), ("1099511627776", EITHER), ("100000", EITHER), (" 8 ", ACCEPT)]:
        add(f"bench/--contexts={v!r}", expect, replace(bench, "--contexts", v))
    for v, expect in [("none", ACCEPT), ("8", ACCEPT), ("x", REJECT), ("-1", REJECT), ("0", REJECT), ("9223372036854775807", REJECT), ("8,x", REJECT)]:
        add(f"bench/--breakdown-contexts={v!r}", expect, replace(bench, "--breakdown-contexts", v))
    add("bench/--format=xml", REJECT, replace(bench, "--format", "xml"))
    add("bench/--preset=nope", REJECT, ["bench", "--preset", "nope"])
    add("bench/--replay=garbage", REJECT, ["bench", "--replay", "r.json"], {"r.json": b"{\"x\": 1}"})
    add("bench/--replay=missing", REJECT, ["bench", "--replay", "missing.json"])
    # --ids / --prompt-ids.
    IDS = [("1 2 3", ACCEPT), ("1,2,3", ACCEPT), ("", REJECT), ("   ", REJECT), ("-1", REJECT), ("1 -2", REJECT), ("1.5", REJECT), ("abc", REJECT),
           ("7999", ACCEPT), ("8000", REJECT), ("2147483648", REJECT), ("9223372036854775807", REJECT), ("9223372036854775808", REJECT),
           ("99999999999999999999999", REJECT), ("0x10", REJECT), ("1e3", REJECT), ("+5", EITHER), ("１", REJECT), ("1;2", REJECT), ("1\u00a02", REJECT),
           (" ".join(["1"] * 1025), REJECT), (" ".join(["1"] * 200), ACCEPT), ("nan", REJECT), ("1,,2", EITHER), ("\t1\n2", ACCEPT)]
    for v, expect in IDS:
        for model, tag in [(L, "llama"), (M, "mamba")]:
            e = expect
            if tag == "mamba" and v == " ".join(["1"] * 1025):
                e = ACCEPT   # no context limit
            add(f"forward/{tag}/--ids={v[:24]!r}", e, ["forward", "--model", model, "--ids", v, "--out", "out.npy", "--threads", "1"])
            pe = e if v.strip() else REJECT
            add(f"generate/{tag}/--prompt-ids={v[:24]!r}", pe, ["generate", "--model", model, "--prompt-ids", v, "--max-tokens", "1", "--output-ids", "--threads", "1"])
        dexpect = ACCEPT if v == " ".join(["1"] * 1025) else expect if v.strip() else EITHER   # no context in detokenize
        add(f"detokenize/--ids={v[:24]!r}", dexpect, ["detokenize", "--model", L, "--ids", v])
    # Other odd command lines.
    add("generate/no-prompt", REJECT, ["generate", "--model", L])
    add("generate/missing-model", REJECT, ["generate", "--model", "/nonexistent", "--prompt-ids", "1"])
    add("generate/model-is-file", REJECT, ["generate", "--model", text_file, "--prompt-ids", "1"])
    add("generate/load-state-missing", REJECT, ["generate", "--model", L, "--load-state", "/nonexistent"])
    add("generate/load-state-dir", REJECT, ["generate", "--model", L, "--load-state", "/tmp"])
    add("generate/save-state-unwritable", REJECT, ["generate", "--model", L, "--prompt-ids", "1", "--max-tokens", "0", "--save-state", "/nonexistent/dir/s"])
    add("forward/out-unwritable", REJECT, ["forward", "--model", L, "--ids", "1", "--out", "/nonexistent/dir/x.npy"])
    add("tokenize/no-source", REJECT, ["tokenize", "--text", "x"])
    add("tokenize/file-invalid-utf8", REJECT, ["tokenize", "--model", L, "--file", "bad.txt"], {"bad.txt": b"ok\n\xff\xfe\n"})
    add("tokenize/file-missing", REJECT, ["tokenize", "--model", L, "--file", "/nonexistent"])
    add("perplexity/empty-file", REJECT, ["perplexity", "--model", L, "--file", "e.txt"], {"e.txt": b""})
    add("perplexity/one-char", EITHER, ["perplexity", "--model", L, "--file", "e.txt"], {"e.txt": b"a"})
    add("perplexity/invalid-utf8", REJECT, ["perplexity", "--model", L, "--file", "e.txt"], {"e.txt": b"\xff\xfe\xfd"})
    add("unknown-command", REJECT, ["frobnicate"])
    add("unknown-flag", REJECT, ["generate", "--model", L, "--prompt-ids", "1", "--bogus"])
    return cases


# ---------------------------------------------------------------------------------------------
# running and classifying

CRASH_MARKERS = re.compile(r"Fatal error|Stack dump|Illegal instruction|Segmentation fault|Current stack trace|AddressSanitizer|"
                           r"UndefinedBehaviorSanitizer|Trace/breakpoint|Aborted|💣|Please submit a bug report|runtime error:|"
                           r"Could not allocate|Couldn't allocate|out of memory|malloc:|terminate called")
USAGE_LINE = re.compile(r"^(Usage:|  See '|Help:|  |$)")


def limit(mem_bytes):
    def apply():
        os.setsid()
        resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def npy_nonfinite(path):
    try:
        raw = read(path)
        if raw[:6] != b"\x93NUMPY":
            return False
        hl = struct.unpack_from("<H", raw, 8)[0]
        a = array.array("f")
        body = raw[10 + hl:]
        a.frombytes(body[: len(body) // 4 * 4])
        return any(not math.isfinite(x) for x in a)
    except OSError:
        return False


def run_case(job):
    index, case, binary, scratch, mem, timeout = job
    folder = os.path.join(scratch, f"case{index}")
    os.makedirs(folder)
    try:
        if case.base:
            shutil.copytree(case.base, os.path.join(folder, "m"))
        for rel, blob in case.files.items():
            p = os.path.join(folder, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(blob)
        start = time.time()
        proc = subprocess.Popen([binary] + case.args, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                preexec_fn=limit(mem), env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
        try:
            out, err = proc.communicate(timeout=timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            rc = None
        seconds = time.time() - start
        err_text = err.decode("utf-8", errors="replace")
        nonfinite = case.check_npy and rc == 0 and npy_nonfinite(os.path.join(folder, "out.npy"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if rc is None:
        outcome = "hang"
    elif rc < 0 or rc >= 128 or CRASH_MARKERS.search(err_text):
        outcome = "crash"
    elif rc == 0:
        if case.expect == REJECT or nonfinite:
            outcome = "silent"
        else:
            outcome = "accepted"
    else:
        lines = [l for l in err_text.splitlines() if not USAGE_LINE.match(l)]
        outcome = "clean" if len(lines) == 1 else "untidy"
    note = ""
    if nonfinite:
        note = "NaN/Inf in the logits"
    elif outcome == "clean" and case.expect == ACCEPT:
        note = "refused an input the rule calls harmless"
    return index, outcome, rc, seconds, err_text, out.decode("utf-8", errors="replace"), note


def stack_top(err):
    """The first line that says where it failed: a Fatal error, a sanitizer report, a frame."""
    found = []
    for pat in [r"Fatal error:.*", r"ERROR: \w+Sanitizer.*", r"Program crashed: .*",
                r"\d+ +(\[ra\] )?0x[0-9a-f]+ (?!.*(libswiftCore|libc\.so|assertionFailure|_fatalError|__pthread|raise|abort))[^\n]* in orochi at [^\n]*"]:
        m = re.search(pat, err)
        if m:
            found.append(re.sub(r"\s+", " ", m.group(0)).strip()[:220])
    if found:
        return " | ".join(found)
    lines = [l for l in err.splitlines() if l.strip()]
    return lines[0][:200] if lines else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build/release/orochi"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--family", default=",".join(FAMILIES))
    ap.add_argument("--limit", type=int, default=0, help="at most N cases per family (0: all)")
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--memory-gib", type=float, default=4)
    ap.add_argument("--log", default=os.path.join(ROOT, ".build-hostile/hostile.log"))
    ap.add_argument("--list", action="store_true", help="print the cases and run nothing")
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)
    if not os.access(binary, os.X_OK):
        sys.exit(f"no executable {binary}: run `swift build -c release --product orochi` (or `make build`)")
    families = a.family.split(",")
    for f in families:
        if f not in FAMILIES:
            sys.exit(f"unknown family {f} (known: {', '.join(FAMILIES)})")
    scratch = tempfile.mkdtemp(prefix="orochi-hostile-")
    try:
        cases = []
        for fam in families:
            rng = random.Random(f"{a.seed}:{fam}")
            made = {"safetensors": lambda: gen_safetensors(rng), "config-llama": lambda: gen_config(rng, "llama"),
                    "config-mamba": lambda: gen_config(rng, "mamba"), "config-jamba": lambda: gen_config_jamba(rng),
                    "tokenizer-model": lambda: gen_tokenizer_model(rng),
                    "tokenizer-json": lambda: gen_tokenizer_json(rng), "snapshot": lambda: gen_snapshot(rng, binary, scratch),
                    "cli": lambda: gen_cli(rng)}[fam]()
            if a.limit:
                made = made[: a.limit]
            cases += made
        if a.list:
            for c in cases:
                print(f"{c.family:16} {c.expect:7} {c.name}")
            print(f"{len(cases)} cases")
            return 0
        print(f"{len(cases)} cases, seed {a.seed}, {a.jobs} job(s), timeout {a.timeout:g} s, memory {a.memory_gib:g} GiB", file=sys.stderr)
        results = [None] * len(cases)
        jobs = [(i, c, binary, scratch, int(a.memory_gib * 2**30), a.timeout) for i, c in enumerate(cases)]
        done = 0
        started = time.time()
        with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
            for r in pool.map(run_case, jobs):
                results[r[0]] = r
                done += 1
                if done % 100 == 0:
                    print(f"  {done}/{len(cases)} ({time.time() - started:.0f} s)", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    # Table and log.
    os.makedirs(os.path.dirname(os.path.abspath(a.log)), exist_ok=True)
    counts = {f: {o: 0 for o in OUTCOMES} for f in families}
    with open(a.log, "w") as log:
        log.write(f"# orochi hostile inputs, seed {a.seed}, binary {binary}\n")
        for c, r in zip(cases, results):
            _, outcome, rc, seconds, err, out, note = r
            counts[c.family][outcome] += 1
            if outcome in ("clean", "accepted") and not note:
                continue
            log.write(f"\n== [{outcome}] {c.family} {c.name} (expect {c.expect}, exit {rc}, {seconds:.1f} s){' — ' + note if note else ''}\n")
            log.write("   command: orochi " + " ".join(repr(x) if (" " in x or not x) else x for x in c.args)[:400] + "\n")
            log.write(f"   top: {stack_top(err)}\n")
            err = re.sub(r"[^\t\x20-\x7e\u00a0-\uffff]", "?", err)
            for line in [l for l in err.splitlines() if l.strip()][:(40 if outcome == 'crash' else 6)]:
                log.write("   | " + line[:300] + "\n")
    width = max(len(f) for f in families + ["family"])
    print(f"{'family':{width}}  " + " ".join(f"{o:>8}" for o in OUTCOMES) + "     total")
    total = {o: 0 for o in OUTCOMES}
    for f in families:
        print(f"{f:{width}}  " + " ".join(f"{counts[f][o]:8d}" for o in OUTCOMES) + f"  {sum(counts[f].values()):8d}")
        for o in OUTCOMES:
            total[o] += counts[f][o]
    print(f"{'all':{width}}  " + " ".join(f"{total[o]:8d}" for o in OUTCOMES) + f"  {sum(total.values()):8d}")
    print(f"details of every non-clean case: {a.log}")
    return 1 if total["crash"] or total["hang"] or total["silent"] else 0


if __name__ == "__main__":
    sys.exit(main())
