#!/usr/bin/env python3
"""Random-weight checkpoints for the peer comparison (mk/peer.mk, `make bench-peer`).

For each shape (llama-6m, mamba-6m, llama-130m, mamba-130m) writes, under --out:
  NAME/f32/   Hugging Face directory (config.json, model.safetensors in float32, tokenizer.model)
  NAME/f16/   the same weights cast to float16
  NAME-f32.gguf, NAME-f16.gguf   converted from NAME/f32 by llama.cpp's convert_hf_to_gguf.py

Weights: transformers' own initialisation (LlamaForCausalLM / MambaForCausalLM) under a fixed seed,
so both engines read the same numbers. Tokenizer: the shipped 8,000-piece SentencePiece model; for a
vocabulary of 32,000 the converter pads the GGUF vocabulary with [PADn] tokens (the speed does not
depend on which ids the pieces are). Existing outputs are kept (delete a folder to remake it).
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

SHAPES = {
    "llama-6m": dict(arch="llama", hidden_size=256, intermediate_size=688, num_hidden_layers=6,
                     num_attention_heads=8, num_key_value_heads=4, vocab_size=8000),
    "mamba-6m": dict(arch="mamba", hidden_size=256, num_hidden_layers=10, state_size=16, expand=2,
                     conv_kernel=4, vocab_size=8000),
    "llama-130m": dict(arch="llama", hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                       num_attention_heads=12, num_key_value_heads=12, vocab_size=32000),
    "mamba-130m": dict(arch="mamba", hidden_size=768, num_hidden_layers=24, state_size=16, expand=2,
                       conv_kernel=4, vocab_size=32000),
}


def shapes_for(spec: str) -> list[str]:
    """'6m 130m' or explicit names ('llama-6m mamba-130m') -> shape names, in table order."""
    names = []
    for word in spec.replace(",", " ").split():
        matched = [n for n in SHAPES if n == word or n.endswith("-" + word)]
        if not matched:
            sys.exit(f"unknown shape '{word}' (known: 6m, 130m, {', '.join(SHAPES)})")
        names += [n for n in matched if n not in names]
    return names


def make_hf(name: str, out: Path, tokenizer: Path, seed: int) -> None:
    f32, f16 = out / name / "f32", out / name / "f16"
    if (f32 / "model.safetensors").exists() and (f16 / "model.safetensors").exists():
        print(f"{name}: safetensors present")
        return
    import torch
    import transformers

    shape = dict(SHAPES[name])
    arch = shape.pop("arch")
    torch.manual_seed(seed)
    if arch == "llama":
        config = transformers.LlamaConfig(
            **shape, rms_norm_eps=1e-5, max_position_embeddings=8192, rope_theta=10000.0,
            tie_word_embeddings=True, hidden_act="silu", bos_token_id=1, eos_token_id=2)
        model = transformers.LlamaForCausalLM(config)
    else:
        config = transformers.MambaConfig(**shape, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2,
                                          pad_token_id=0)
        model = transformers.MambaForCausalLM(config)
    model = model.float().eval()
    params = sum(p.numel() for p in model.parameters())
    for folder, dtype in ((f32, torch.float32), (f16, torch.float16)):
        folder.mkdir(parents=True, exist_ok=True)
        model.to(dtype).save_pretrained(folder, safe_serialization=True)
        shutil.copy(tokenizer, folder / "tokenizer.model")
        (folder / "tokenizer_config.json").write_text(json.dumps(
            {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
             "unk_token": "<unk>", "tokenizer_class": "LlamaTokenizer"}) + "\n")
    print(f"{name}: {params:,} parameters -> {f32}, {f16}")


def make_gguf(name: str, out: Path, llama_cpp: Path) -> None:
    for outtype in ("f32", "f16"):
        target = out / f"{name}-{outtype}.gguf"
        if target.exists():
            print(f"{target}: present")
            continue
        tmp = target.with_suffix(".gguf.tmp")
        cmd = [sys.executable, str(llama_cpp / "convert_hf_to_gguf.py"), str(out / name / "f32"),
               "--outtype", outtype, "--outfile", str(tmp)]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=llama_cpp)
        tmp.rename(target)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--llama-cpp", type=Path, required=True, help="the vendored llama.cpp folder (convert_hf_to_gguf.py)")
    ap.add_argument("--tokenizer", type=Path, required=True, help="SentencePiece tokenizer.model")
    ap.add_argument("--shapes", default="6m 130m")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    out = args.out.resolve()
    for name in shapes_for(args.shapes):
        make_hf(name, out, args.tokenizer.resolve(), args.seed)
        make_gguf(name, out, args.llama_cpp.resolve())


if __name__ == "__main__":
    main()
