#!/usr/bin/env python3
"""Trains Orochi's Japanese SentencePiece model on the training split of the corpus.

Options are recorded in Models/DATA.md; change both together."""
import argparse
import os

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))

OPTIONS = dict(
    model_type="unigram",
    vocab_size=8000,
    byte_fallback=True,
    character_coverage=0.9995,
    normalization_rule_name="nmt_nfkc",
    split_digits=True,
    unk_id=0, bos_id=1, eos_id=2, pad_id=3,
    unk_piece="<unk>", bos_piece="<s>", eos_piece="</s>", pad_piece="<pad>",
    max_sentence_length=16384,
    input_sentence_size=0,          # use every paragraph
    shuffle_input_sentence=False,
    seed_sentencepiece_size=1000000,
    num_threads=2,
    random_seed=1234,
)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", default=os.path.join(HERE, "out", "train.txt"))
    ap.add_argument("--prefix", default=os.path.join(HERE, "out", "tokenizer"))
    args = ap.parse_args()
    if hasattr(spm, "set_random_generator_seed"):
        spm.set_random_generator_seed(OPTIONS["random_seed"])
    opts = {k: v for k, v in OPTIONS.items() if k != "random_seed"}
    spm.SentencePieceTrainer.train(input=args.input, model_prefix=args.prefix,
                                   minloglevel=1, **opts)
    sp = spm.SentencePieceProcessor(model_file=args.prefix + ".model")
    print("vocab", sp.get_piece_size(), "->", args.prefix + ".model")
    print(sp.encode("日本語の文章を分割します。", out_type=str))


if __name__ == "__main__":
    main()
