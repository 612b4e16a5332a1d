#!/usr/bin/env python3
"""Writes the committed seed corpora and dictionaries of the fuzz targets (stdlib only).

Seeds are small on purpose (libFuzzer runs fastest on small inputs): safetensors files are
synthetic with the fixtures' tensor names, tokenizer files are the fixtures cut down to a few
hundred pieces, configs are the fixtures' own. Snapshot seeds come from the FuzzSnapshot binary
(OROCHI_FUZZ_SEEDS=DIR), see mk/fuzz.mk.

    python3 Fuzz/Scripts/make_seeds.py            # from the repository root
"""
import json, os, struct, sys, glob

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "Tests/OrochiTests/Fixtures")
OUT = os.path.join(ROOT, "Fuzz/Corpus")
DICT = os.path.join(ROOT, "Fuzz/Dictionaries")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None, pad=0):
    """tensors: [(name, dtype, shape, raw bytes)] -> file bytes."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * pad
    return struct.pack("<Q", len(h)) + h + data


def f32(n, start=0.0):
    return struct.pack("<%df" % n, *[start + 0.25 * i for i in range(n)])


def f16(n):
    return struct.pack("<%de" % n, *[0.5 * i for i in range(n)])


def bf16(n):
    return b"".join(struct.pack("<f", 0.5 * i)[2:] for i in range(n))


def seeds_safetensors():
    put("safetensors", "one-f32", safetensors([("model.norm.weight", "F32", [4], f32(4))]))
    put("safetensors", "mixed", safetensors([
        ("model.embed_tokens.weight", "F32", [3, 2], f32(6)),
        ("model.layers.0.input_layernorm.weight", "F16", [2], f16(2)),
        ("model.layers.0.self_attn.q_proj.weight", "BF16", [2, 2], bf16(4)),
        ("lm_head.weight", "F32", [1, 2], f32(2)),
    ], metadata={"format": "pt"}))
    put("safetensors", "empty-and-int", safetensors([
        ("empty", "F32", [0, 3], b""), ("ids", "I64", [2], struct.pack("<2q", 1, 2)),
        ("flag", "BOOL", [1], b"\x01"), ("w", "F64", [1], struct.pack("<d", 1.0)),
    ]))
    put("safetensors", "unaligned", safetensors([("a", "U8", [1], b"\x07"), ("b", "F32", [2], f32(2))]))
    put("safetensors", "padded-header", safetensors([("x", "F16", [2, 1], f16(2))], pad=5))
    put("safetensors", "empty-header", struct.pack("<Q", 2) + b"{}")
    # The real header of a fixture, with its data section (the smallest fixture).
    smallest = min(glob.glob(os.path.join(FIX, "**/*.safetensors"), recursive=True), key=os.path.getsize)
    with open(smallest, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    # Shrink every tensor to one element of its dtype so the seed stays small.
    small = []
    for name, e in sorted(header.items()):
        if name == "__metadata__":
            continue
        size = {"F32": 4, "F16": 2, "BF16": 2}.get(e["dtype"], 4)
        small.append((name, e["dtype"], [1] * len(e["shape"]), b"\x00" * size))
    put("safetensors", "fixture-names", safetensors(small, metadata=header.get("__metadata__")))


def seeds_configs():
    for arch in ["llama", "mamba"]:
        for cfg in sorted(glob.glob(os.path.join(FIX, arch, "*/config.json"))):
            put("config-" + arch, os.path.basename(os.path.dirname(cfg)) + ".json", open(cfg, "rb").read())
        put("config-" + arch, "shipped.json", open(os.path.join(ROOT, "Models/orochi-ja-" + arch, "config.json"), "rb").read())
    for cfg in sorted(glob.glob(os.path.join(FIX, "jamba", "*", "config.json"))):
        put("config-jamba", os.path.basename(os.path.dirname(cfg)) + ".json", open(cfg, "rb").read())


# --- protobuf (tokenizer.model) -------------------------------------------------------------
def varint(b, i):
    v = s = 0
    while True:
        c = b[i]; i += 1
        v |= (c & 0x7F) << s; s += 7
        if c < 0x80:
            return v, i


def fields(b):
    """Top-level (field, wire type, raw bytes of the whole field) of a protobuf message."""
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
            raise ValueError("wire type %d" % wt)
        out.append((tag >> 3, wt, b[start:i]))
    return out


def encode_varint(v):
    out = b""
    while True:
        c = v & 0x7F; v >>= 7
        if v:
            out += bytes([c | 0x80])
        else:
            return out + bytes([c])


def without_charsmap(raw):
    """A NormalizerSpec field (tag 3 or 5, length-delimited) without its precompiled_charsmap."""
    tag, i = varint(raw, 0)
    n, i = varint(raw, i)
    body = b"".join(r for f, _, r in fields(raw[i:i + n]) if f != 2)
    return encode_varint(tag) + encode_varint(len(body)) + body


def shrink_model(path, keep, charsmap=False):
    b = open(path, "rb").read()
    pieces, rest = [], []
    for field, wt, raw in fields(b):
        if field in (3, 5) and not charsmap:
            raw = without_charsmap(raw)
        (pieces if field == 1 else rest).append(raw)
    # Keep the first `keep` pieces and every byte piece (<0x..>), so byte fallback still works.
    kept = pieces[:keep] + [p for p in pieces[keep:] if b"<0x" in p]
    return b"".join(kept + rest)


def seeds_sentencepiece():
    for path in sorted(glob.glob(os.path.join(FIX, "tokenizers/*/tokenizer.model"))):
        name = os.path.basename(os.path.dirname(path))
        # The precompiled charsmap (~240 KB) is kept in one seed only: small seeds fuzz faster.
        data = shrink_model(path, 120, charsmap=(name == "sp-bpe-nmt-nfkc-bytes"))
        put("sentencepiece", name + ".model", data)
    put("sentencepiece", "shipped.model", shrink_model(os.path.join(ROOT, "Models/orochi-ja-llama/tokenizer.model"), 120))


def seeds_hf():
    for path in sorted(glob.glob(os.path.join(FIX, "tokenizers/*/tokenizer.json"))):
        name = os.path.basename(os.path.dirname(path))
        t = json.load(open(path, encoding="utf-8"))
        m = t.get("model") or {}
        keep = 300   # byte-level BPE needs its 256-byte alphabet (ids < 256 in the fixtures)
        if isinstance(m.get("vocab"), dict):
            vocab = {k: v for k, v in m["vocab"].items() if v < keep}
            m["vocab"] = vocab
            if "merges" in m:
                ok = []
                for mg in m["merges"]:
                    a, b = mg.split(" ", 1) if isinstance(mg, str) else mg
                    if a in vocab and b in vocab and a + b in vocab:
                        ok.append(mg)
                m["merges"] = ok[:200]
        elif isinstance(m.get("vocab"), list):
            m["vocab"] = m["vocab"][:keep]
            if isinstance(m.get("unk_id"), int) and m["unk_id"] >= keep:
                m["unk_id"] = 0
        t["added_tokens"] = [a for a in t.get("added_tokens") or [] if a.get("id", 0) < keep + 50]
        put("hf-tokenizer", name + ".json", json.dumps(t, ensure_ascii=False, separators=(",", ":")))


def seeds_cli():
    for i, s in enumerate(["1 2 3", "0", "1,2,3", "  7\t8\n9 ", "", "39 0 39", "12,,13", "+5", "00001"]):
        put("cli-parsers", "ids-%d" % i, s)


def dictionaries():
    os.makedirs(DICT, exist_ok=True)
    def quote(word):
        # libFuzzer's dictionary syntax: "..." with \\, \" and \xNN escapes only.
        out = ""
        for b in word.encode("utf-8"):
            c = chr(b)
            out += "\\" + c if c in "\\\"" else c if 0x20 <= b < 0x7F else "\\x%02X" % b
        return '"%s"' % out

    def write(name, words):
        with open(os.path.join(DICT, name), "w") as f:
            for w in words:
                f.write(quote(w) + "\n")
    json_tokens = ["{", "}", "[", "]", ":", ",", "\"", "null", "true", "false", "-1", "0", "1e309", "-0",
                   "9223372036854775807", "9223372036854775808", "-9223372036854775808", "1.5", "NaN", "\\u0000"]
    write("safetensors.dict", json_tokens + ['"dtype"', '"shape"', '"data_offsets"', '"__metadata__"',
          '"F32"', '"F16"', '"BF16"', '"F64"', '"I64"', '"I32"', '"I16"', '"I8"', '"U8"', '"BOOL"', '"U16"', '"U32"', '"U64"',
          '"model.embed_tokens.weight"', '"lm_head.weight"'])
    llama = ["model_type", "architectures", "hidden_size", "intermediate_size", "num_hidden_layers",
             "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size", "rms_norm_eps",
             "max_position_embeddings", "rope_theta", "rope_scaling", "rope_parameters", "rope_type", "type",
             "factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings",
             "tie_word_embeddings", "attention_bias", "mlp_bias", "hidden_act", "sliding_window",
             "use_sliding_window", "bos_token_id", "eos_token_id", "llama", "mistral", "qwen2", "linear",
             "llama3", "default", "silu"]
    mamba = ["model_type", "hidden_size", "num_hidden_layers", "vocab_size", "state_size", "expand",
             "conv_kernel", "time_step_rank", "intermediate_size", "use_conv_bias", "use_bias",
             "layer_norm_epsilon", "residual_in_fp32", "tie_word_embeddings", "hidden_act", "auto", "mamba",
             "silu", "bos_token_id", "eos_token_id"]
    write("config-llama.dict", json_tokens + ['"%s"' % k for k in llama])
    write("config-mamba.dict", json_tokens + ['"%s"' % k for k in mamba])
    jamba = ["model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
             "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps", "max_position_embeddings",
             "tie_word_embeddings", "hidden_act", "num_experts", "num_local_experts", "num_experts_per_tok",
             "expert_layer_period", "expert_layer_offset", "attn_layer_period", "attn_layer_offset", "mamba_d_state",
             "mamba_d_conv", "mamba_expand", "mamba_dt_rank", "mamba_conv_bias", "mamba_proj_bias", "auto", "jamba", "silu"]
    write("config-jamba.dict", json_tokens + ['"%s"' % k for k in jamba])
    hf = ["model", "type", "BPE", "Unigram", "WordPiece", "WordLevel", "vocab", "merges", "unk_token", "unk_id",
          "byte_fallback", "fuse_unk", "continuing_subword_prefix", "end_of_word_suffix", "dropout",
          "ignore_merges", "added_tokens", "id", "content", "special", "normalized", "lstrip", "rstrip",
          "single_word", "normalizer", "pre_tokenizer", "post_processor", "decoder", "Sequence", "normalizers",
          "pretokenizers", "decoders", "NFC", "NFKC", "NFD", "NFKD", "Lowercase", "Strip", "Replace",
          "Prepend", "Precompiled", "precompiled_charsmap", "ByteLevel", "Metaspace", "Whitespace",
          "WhitespaceSplit", "Split", "Digits", "Punctuation", "ByteFallback", "Fuse", "TemplateProcessing",
          "single", "pair", "special_tokens", "ids", "tokens", "SpecialToken", "Sequence", "sequence_id",
          "replacement", "prepend_scheme", "split", "add_prefix_space", "trim_offsets", "use_regex",
          "pattern", "String", "Regex", "behavior", "invert", "Isolated", "Removed", "MergedWithPrevious",
          "first", "always", "never", "individual_digits", "left", "right", "start", "stop", "▁", "Ġ"]
    write("hf-tokenizer.dict", json_tokens + ['"%s"' % k for k in hf])
    write("cli-parsers.dict", [" ", ",", "\t", "-", "+", "0x", "9223372036854775807", "9223372036854775808", "nan", "1e3"])


if __name__ == "__main__":
    seeds_safetensors(); seeds_configs(); seeds_sentencepiece(); seeds_hf(); seeds_cli(); dictionaries()
    for t in sorted(os.listdir(OUT)):
        files = os.listdir(os.path.join(OUT, t))
        print("%-14s %3d seeds %8d bytes" % (t, len(files), sum(os.path.getsize(os.path.join(OUT, t, f)) for f in files)))
