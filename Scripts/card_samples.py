#!/usr/bin/env python3
"""The model card's samples (Models/README.md, "Samples") and their share of digits.

Runs the release `orochi generate` on each shipped model and each card prompt with the card's
settings, prints the samples as Markdown list items and, per model, the digits among the
generated characters (white space not counted, the prompt excluded), as ShippedModelTests
counts them. Standard library only: `make samples`.
"""
import subprocess, sys

PROMPTS = ["ファイルを開くには", "このコマンドは", "設定ファイルの場所は", "パッケージをインストールする"]
SETTINGS = ["--max-tokens", "60", "--temperature", "0.8", "--top-k", "40", "--top-p", "0.95", "--seed", "42"]


def is_digit(ch):
    return "0" <= ch <= "9" or "０" <= ch <= "９"


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else ".build/release/orochi"
    models = sys.argv[2:] or ["Models/orochi-ja-llama", "Models/orochi-ja-mamba", "Models/orochi-ja-jamba"]
    totals = []
    for model in models:
        name = model.rstrip("/").split("/")[-1]
        digits = characters = 0
        for prompt in PROMPTS:
            out = subprocess.run([binary, "generate", "--model", model, "--prompt", prompt] + SETTINGS,
                                 check=True, capture_output=True, text=True).stdout.rstrip("\n")
            assert out.startswith(prompt), out
            generated = "".join(ch for ch in out[len(prompt):] if not ch.isspace())
            characters += len(generated)
            digits += sum(is_digit(ch) for ch in generated)
            print("- **%s**, 「%s」: %s" % (name, prompt, out.replace("\n", " ")))
        totals.append((name, digits, characters))
    print()
    for name, digits, characters in totals:
        print("%s: %d / %d = %.1f %% digits" % (name, digits, characters, 100.0 * digits / max(1, characters)))


if __name__ == "__main__":
    main()
