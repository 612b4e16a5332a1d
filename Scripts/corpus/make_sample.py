#!/usr/bin/env python3
"""Writes Models/validation-sample.txt: the first whole lines of the validation split
(held-out package) up to --bytes of UTF-8, for the Swift perplexity test."""
import argparse
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--valid", default=os.path.join(HERE, "out", "valid.txt"))
ap.add_argument("--out", default=os.path.join(ROOT, "Models", "validation-sample.txt"))
ap.add_argument("--bytes", type=int, default=16000)
args = ap.parse_args()
out, size = [], 0
with open(args.valid, encoding="utf-8") as f:
    for line in f:
        n = len(line.encode("utf-8"))
        if size + n > args.bytes:
            break
        out.append(line)
        size += n
text = "".join(out).rstrip("\n") + "\n"
with open(args.out, "w", encoding="utf-8") as f:
    f.write(text)
print("%s: %d lines, %d characters, %d bytes" % (args.out, text.count("\n"), len(text),
                                                 len(text.encode("utf-8"))))
