#!/usr/bin/env python3
"""Perplexity and bits per character of a model on a text file (PyTorch reference).

Semantics (Orochi's `orochi perplexity` copies them exactly):
  seq = [bos] + sp.encode(whole file text)          (one string, no line splitting)
  for begin in range(0, L, stride):
      end = min(begin + context, L)
      score the targets t in [max(begin + 1, prev_end), end) with the logits of the
      window seq[begin:end] (position t predicted from window position t - 1 - begin)
      prev_end = end; stop after the window that reaches L
  NLL (nats) summed over the L - 1 targets;
  perplexity = exp(NLL / (L - 1)); bits/char = NLL / ln 2 / (Unicode characters of file).
Every window is run from scratch (no state carried between windows, Llama or Mamba).
Context defaults to 512 (capped at max_position_embeddings), stride to context / 2.
"""
import argparse
import json
import math
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Scripts", "training"))


def load(model_dir, stock_scan=False):
    import sentencepiece as spm
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    cfg = AutoConfig.from_pretrained(model_dir)
    if cfg.model_type in ("mamba", "jamba") and not stock_scan:
        import fast_mamba  # exact to float32 rounding, see training/test_scan.py
        fast_mamba.patch()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
    return model, sp


@torch.no_grad()
def evaluate(model, sp, text, context, stride):
    bos = model.config.bos_token_id
    seq = [bos] + sp.encode(text)
    L = len(seq)
    ids = torch.tensor(seq, dtype=torch.long)
    nll, scored, prev_end = 0.0, 0, 0
    for begin in range(0, L, stride):
        end = min(begin + context, L)
        first = max(begin + 1, prev_end)
        if first < end:
            window = ids[begin:end].unsqueeze(0)
            logits = model(input_ids=window, use_cache=False).logits[0].float()
            logp = torch.log_softmax(logits, dim=-1)
            t = torch.arange(first, end)
            nll -= logp[t - 1 - begin, ids[t]].double().sum().item()
            scored += end - first
        prev_end = end
        if end == L:
            break
    assert scored == L - 1, (scored, L)
    return nll, L


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--stride", type=int, default=None)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", "2")))
    ap.add_argument("--stock-scan", action="store_true",
                    help="Mamba: transformers' own per-token loop instead of the C++ scan")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, sp = load(args.model, args.stock_scan)
    context = args.context
    mpe = getattr(model.config, "max_position_embeddings", None)
    if mpe:
        context = min(context, mpe)
    stride = args.stride or max(1, context // 2)
    with open(args.file, encoding="utf-8") as f:
        text = f.read()
    t0 = time.time()
    nll, L = evaluate(model, sp, text, context, stride)
    chars = len(text)
    res = {"model": args.model, "file": args.file, "context": context, "stride": stride,
           "tokens": L, "targets": L - 1, "characters": chars, "nll": nll,
           "loss": nll / (L - 1), "perplexity": math.exp(nll / (L - 1)),
           "bits_per_char": nll / math.log(2) / chars, "seconds": time.time() - t0}
    if args.json:
        print(json.dumps(res))
    else:
        print("%s on %s (context %d, stride %d): %d tokens, %d characters, NLL %.2f nats, "
              "perplexity %.4f, bits/char %.4f" % (
                  args.model, args.file, context, stride, L, chars, nll,
                  res["perplexity"], res["bits_per_char"]))


if __name__ == "__main__":
    main()
