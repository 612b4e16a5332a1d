#!/usr/bin/env python3
"""Two baselines for the model card, on the same validation text as the models.

1. Unigram frequency model on the shipped tokenizer: token counts of the training
   split (every document as [bos] pieces [eos], as in training), add-one smoothing
   over the whole vocabulary. Scored like eval_perplexity.py: seq = [bos] +
   sp.encode(whole file), the L - 1 targets after the bos.
2. xz -9: compressed size in bits / Unicode characters of the file.
"""
import argparse
import math
import subprocess

import numpy as np
import sentencepiece as spm


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--valid", required=True)
    ap.add_argument("files", nargs="*", help="further files to score")
    args = ap.parse_args()
    sp = spm.SentencePieceProcessor(model_file=args.tokenizer)
    V = sp.get_piece_size()
    counts = np.zeros(V, dtype=np.int64)
    with open(args.train, encoding="utf-8") as f:
        docs = [d for d in f.read().split("\n\n") if d.strip()]
    for ids in sp.encode(docs):
        counts[sp.bos_id()] += 1
        counts[sp.eos_id()] += 1
        np.add.at(counts, ids, 1)
    logp = np.log((counts + 1) / (counts.sum() + V))
    print("%-34s %-16s %10s %10s %10s" % ("file", "baseline", "tokens", "perplexity", "bits/char"))
    for path in [args.valid] + args.files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        chars = len(text)
        seq = [sp.bos_id()] + sp.encode(text)
        nll = -float(logp[seq[1:]].sum())
        print("%-34s %-16s %10d %10.2f %10.4f" % (path, "unigram+1", len(seq), math.exp(nll / (len(seq) - 1)),
                                                nll / math.log(2) / chars))
        xz = subprocess.run(["xz", "-9", "-c", path], check=True, capture_output=True).stdout
        print("%-34s %-16s %10s %10s %10.4f" % (path, "xz -9", "", "", len(xz) * 8 / chars))


if __name__ == "__main__":
    main()
