#!/usr/bin/env python3
"""Checks the DOM that headless Chromium rendered from `orochi explain`'s page (stdlib only).

Usage: explain_check.py DOM.html MODELS LAYERS
Fails unless the rendered DOM has one section per model, one map figure per layer (LAYERS in all),
each holding an inline <svg> with drawn content, a reach chart and the trace and memory tables
per model.
"""
import sys
from html.parser import HTMLParser


class Counter(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.counts, self.svg_paths = [], {}, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        for key in [("section", "model"), ("figure", "map"), ("figure", "reach"), ("table", "trace"), ("table", "memory")]:
            if tag == key[0] and key[1] in classes:
                self.counts[key] = self.counts.get(key, 0) + 1
        if tag == "svg":
            self.svg_paths.append(0)
        elif self.svg_paths and tag in ("path", "image", "rect", "polygon"):
            self.svg_paths[-1] += 1


def main():
    dom, models, layers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    c = Counter()
    c.feed(open(dom, encoding="utf-8").read())
    want = {("section", "model"): models, ("figure", "map"): layers, ("figure", "reach"): models,
            ("table", "trace"): models, ("table", "memory"): models}
    bad = [f"{k[0]}.{k[1]}: {c.counts.get(k, 0)}, expected {v}" for k, v in want.items() if c.counts.get(k, 0) != v]
    if len(c.svg_paths) != layers + models:
        bad.append(f"{len(c.svg_paths)} inline svg elements, expected {layers + models}")
    if any(n == 0 for n in c.svg_paths):
        bad.append("an svg with nothing drawn in it")
    if bad:
        sys.exit("explain-check: " + "; ".join(bad))
    print(f"explain-check: {models} models, {layers} layer maps, {len(c.svg_paths)} inline svg, all drawn")


if __name__ == "__main__":
    main()
