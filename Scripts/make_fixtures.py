#!/usr/bin/env python3
"""Writes the reference fixtures that Orochi's tests compare against.

Each family module in Scripts/fixtures/ (llama.py, mamba.py, ...) builds small random checkpoints
with transformers, saves them with save_pretrained, and records what transformers computes for
them: logits at every position (float32 .npy) and a greedy continuation. Run by `make fixtures`.
The families of EXPLICIT run only when --only names them (`make smollm2-fixtures`).
"""
import argparse
import importlib
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))

# Families that need llama.cpp's peer build (`make peer`: quantize, granite_gguf), and smollm2 a download (`make smollm2`, 98 MB).
EXPLICIT = {"smollm2", "quantize", "granite_gguf"}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="Tests/OrochiTests/Fixtures", help="fixtures root")
    parser.add_argument("--only", nargs="*", help="families to regenerate (default: all)")
    args = parser.parse_args()
    families = sorted(p.stem for p in (pathlib.Path(__file__).parent / "fixtures").glob("*.py") if p.stem != "common")
    for family in families:
        if args.only and family not in args.only:
            continue
        if family in EXPLICIT and not args.only:
            continue
        module = importlib.import_module(f"fixtures.{family}")
        module.generate(pathlib.Path(args.out) / family)


if __name__ == "__main__":
    main()
