#!/usr/bin/env python3
"""Orochi's Mamba-2 against llama.cpp and transformers on the same random-weight checkpoint.

  1. A seeded random-weight Mamba2ForCausalLM (the shipped Japanese SentencePiece vocabulary; --shape
     small: hidden 256, 4 layers, 16 heads of 32, state 64, 2 groups; --shape 130m: mamba2-130m's
     hidden 768, 24 layers, 24 heads of 64, state 128, 1 group; conv 4, chunk 256, tied head), weights
     scaled so the logits are not flat, saved to OUT/dir with the tokenizer files.
  2. convert_hf_to_gguf.py --outtype f32 → OUT/m2-f32.gguf; llama-quantize → OUT/m2-q8_0.gguf;
     orochi quantize --type F32 → OUT/m2-orochi-f32.gguf, its tensors compared with convert's.
  3. llama-perplexity -c CTX on the three files; orochi perplexity --llama-cpp --context CTX on the
     directory and convert's two files (the "Final estimate: PPL" of each).
  4. Logits of the first IDS token ids of the text (sentencepiece, BOS first): transformers (float32,
     use_cache=False) against orochi forward on the directory and each file: max |Δ| / max |logit|.
All figures go to OUT/result.json (OUT = build/mamba2-check) and a table is printed.
"""
import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "Scripts"))
from fixtures.common import init_ssm_weights  # noqa: E402
BIN = REPO / "build/peer/llama.cpp-build/bin"
CONVERT = REPO / "build/peer/src/llama_cpp_python-0.3.36/vendor/llama.cpp/convert_hf_to_gguf.py"
TOKENIZER = REPO / "Models/orochi-ja-mamba"
PPL = re.compile(r"Final estimate: PPL = ([0-9.]+)(?: \+/- ([0-9.]+))?")
CHUNKS = re.compile(r"over (\d+) chunks|(\d+) chunks of")        # llama-perplexity, orochi


def run(cmd, env=None, timeout=1800):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{(p.stdout + p.stderr)[-3000:]}")
    return p.stdout + p.stderr


SHAPES = {
    "small": dict(hidden_size=256, num_hidden_layers=4, head_dim=32, num_heads=16, state_size=64, n_groups=2),
    "130m": dict(hidden_size=768, num_hidden_layers=24, head_dim=64, num_heads=24, state_size=128, n_groups=1),   # mamba2-130m
}


def build_checkpoint(directory, seed, std, shape):
    import torch
    from transformers import Mamba2Config, Mamba2ForCausalLM

    tok = json.loads((TOKENIZER / "config.json").read_text())
    config = Mamba2Config(vocab_size=tok["vocab_size"], expand=2, conv_kernel=4, chunk_size=256, **SHAPES[shape],
                          layer_norm_epsilon=1e-5, tie_word_embeddings=True, bos_token_id=tok["bos_token_id"],
                          eos_token_id=tok["eos_token_id"], pad_token_id=tok["pad_token_id"])
    torch.manual_seed(seed)
    model = Mamba2ForCausalLM(config).eval()
    init_ssm_weights(model, std)
    if directory.exists():
        shutil.rmtree(directory)
    model.save_pretrained(directory, safe_serialization=True)
    (directory / "generation_config.json").unlink(missing_ok=True)
    for name in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
        if (TOKENIZER / name).exists():
            shutil.copy(TOKENIZER / name, directory / name)
    return model


def reference_ids(text, count):
    import sentencepiece
    sp = sentencepiece.SentencePieceProcessor(model_file=str(TOKENIZER / "tokenizer.model"))
    config = json.loads((TOKENIZER / "tokenizer_config.json").read_text()) if (TOKENIZER / "tokenizer_config.json").exists() else {}
    bos = [sp.bos_id()] if config.get("add_bos_token", True) and sp.bos_id() >= 0 else []
    return (bos + sp.encode(text))[:count]


def perplexity(cmd):
    try:
        out = run(cmd)
    except RuntimeError as e:
        return {"error": str(e)}
    m = PPL.findall(out)
    if not m:
        return {"error": "no 'Final estimate: PPL' in output:\n" + out[-2000:]}
    chunks = CHUNKS.search(out)
    return {"ppl": float(m[-1][0]), "pm": float(m[-1][1]) if m[-1][1] else None,
            "chunks": int(chunks.group(1) or chunks.group(2)) if chunks else None}


def orochi_logits(a, model, ids):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "logits.npy"
        try:
            run([a.orochi, "forward", "--model", model, "--ids", " ".join(map(str, ids)), "--out", out,
                 "--threads", a.threads, "--context", len(ids)])
        except RuntimeError as e:
            return None, str(e)
        return np.load(out), None


def compare_tensors(ours, theirs):
    """Names, shapes, types and values of two GGUF files' tensors (ssm_a within 1 ulp-ish, 1e-6 relative)."""
    from gguf import GGUFReader
    a = {t.name: t for t in GGUFReader(str(ours)).tensors}
    b = {t.name: t for t in GGUFReader(str(theirs)).tensors}
    diffs = sorted(set(a) ^ set(b))
    for name in sorted(set(a) & set(b)):
        x, y = a[name], b[name]
        if list(x.shape) != list(y.shape) or x.tensor_type != y.tensor_type:
            diffs.append(f"{name}: {list(x.shape)} {x.tensor_type.name} against {list(y.shape)} {y.tensor_type.name}")
        elif name.endswith("ssm_a"):
            if not np.allclose(x.data, y.data, rtol=1e-6, atol=0):
                diffs.append(f"{name}: values")
        elif not np.array_equal(np.asarray(x.data), np.asarray(y.data)):
            diffs.append(f"{name}: values")
    return {"tensors": len(b), "differences": diffs}


def tensor_listing(path):
    import gguf
    reader = gguf.GGUFReader(path)
    return [f"{t.name} {t.tensor_type.name} {list(map(int, t.shape))}" for t in reader.tensors]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orochi", default=str(REPO / ".build/release/orochi"))
    ap.add_argument("--text", type=Path, default=REPO / "Models/validation-sample.txt")
    ap.add_argument("--out", type=Path, default=REPO / "build/mamba2-check")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--context", type=int, default=256, help="perplexity chunk (halved while the text is shorter than two)")
    ap.add_argument("--ids", type=int, default=300, help="token ids for the logit comparison")
    ap.add_argument("--seed", type=int, default=2025)
    ap.add_argument("--std", type=float, default=0.08, help="standard deviation of the weight matrices")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="small")
    a = ap.parse_args()
    for tool in [CONVERT, BIN / "llama-quantize", BIN / "llama-perplexity", Path(a.orochi)]:
        if not Path(tool).exists():
            raise SystemExit(f"mamba2_check: {tool} is missing")
    a.out.mkdir(parents=True, exist_ok=True)
    directory, f32, q8 = a.out / "dir", a.out / "m2-f32.gguf", a.out / "m2-q8_0.gguf"
    text = a.text.read_text(encoding="utf-8")

    import torch
    model = build_checkpoint(directory, a.seed, a.std, a.shape)
    print(f"{directory}: {sum(p.numel() for p in model.parameters())} parameters", flush=True)
    run([sys.executable, CONVERT, directory, "--outtype", "f32", "--outfile", f32])
    run([BIN / "llama-quantize", f32, q8, "Q8_0"])
    result = {"seed": a.seed, "std": a.std, "shape": a.shape, "threads": a.threads, "tensors_f32": tensor_listing(f32)}
    # orochi quantize's own conversion of the directory: every tensor equal to convert_hf_to_gguf.py's
    # (A = −exp(A_log) to within the exp's last bit), and llama.cpp loads it.
    ours = a.out / "m2-orochi-f32.gguf"
    run([a.orochi, "quantize", "--model", directory, "--type", "F32", "--out", ours])
    result["orochi_quantize"] = compare_tensors(ours, f32)

    n_tokens = len(reference_ids(text, 10**9))
    ctx = a.context
    while ctx > 16 and n_tokens < 2 * ctx:
        ctx //= 2
    result["context"], result["text_tokens"] = ctx, n_tokens
    ppl = {}
    for name, path in [("f32", f32), ("q8_0", q8), ("orochi-quantize f32", ours)]:
        ppl[f"llama.cpp {name}"] = perplexity([BIN / "llama-perplexity", "-m", path, "-f", a.text, "-c", ctx, "-t", a.threads])
    for name, path in [("dir", directory), ("f32", f32), ("q8_0", q8), ("orochi-quantize f32", ours)]:
        ppl[f"orochi {name}"] = perplexity([a.orochi, "perplexity", "--model", path, "--file", a.text, "--context", ctx,
                                            "--threads", a.threads, "--llama-cpp"])
    result["perplexity"] = ppl

    ids = reference_ids(text, a.ids)
    with torch.no_grad():
        ref = model.float()(torch.tensor([ids]), use_cache=False).logits[0].numpy()
    scale = float(np.abs(ref).max())
    logits = {"ids": len(ids), "max_abs_reference": scale, "reference_std": float(ref.std())}
    for name, path in [("dir", directory), ("f32", f32), ("q8_0", q8)]:
        got, err = orochi_logits(a, path, ids)
        if err:
            logits[name] = {"error": err}
            continue
        if got.shape != ref.shape:
            logits[name] = {"error": f"shape {got.shape} against {ref.shape}"}
            continue
        d = np.abs(got - ref)
        logits[name] = {"max_abs": float(d.max()), "relative": float(d.max() / scale),
                        "argmax_agree": float((got.argmax(-1) == ref.argmax(-1)).mean())}
    result["logits"] = logits
    (a.out / "result.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")

    print(f"\nperplexity, --context {ctx}, llama.cpp's scoring ({a.text.name}: {n_tokens} ids by sentencepiece; "
          "a GGUF file's vocabulary is tokenized as llama.cpp's `llama` model does, hence other chunk counts)")
    for k, v in ppl.items():
        print(f"  {k:30} " + (f"{v['ppl']:.4f}" + (f" ± {v['pm']:.4f}" if v["pm"] else "") + f"  ({v['chunks']} chunks)"
                              if "ppl" in v else "FAILED"))
    print(f"logits against transformers float32 ({len(ids)} ids, max |logit| {scale:.3f}, std {logits['reference_std']:.3f})")
    for k in ("dir", "f32", "q8_0"):
        v = logits[k]
        print(f"  orochi {k:9} " + (f"max |Δ| {v['max_abs']:.3e}  relative {v['relative']:.3e}  argmax agree {v['argmax_agree']:.3f}"
                                    if "error" not in v else "FAILED"))
    for k, v in [*ppl.items(), *((f"logits {k}", logits[k]) for k in ("dir", "f32", "q8_0"))]:
        if "error" in v:
            print(f"\n{k}: {v['error']}")
    oq = result["orochi_quantize"]
    print(f"orochi quantize --type F32 against convert_hf_to_gguf.py: {oq['tensors']} tensors, "
          + (f"{len(oq['differences'])} differ: {oq['differences'][:5]}" if oq["differences"] else "all equal"))
    print(f"\n{a.out / 'result.json'}")


if __name__ == "__main__":
    main()
