#!/usr/bin/env python3
"""Trains small tokenizers with the reference libraries and writes parity fixtures.

Text: the Japanese manual pages of Debian's `manpages-ja` package (see docs/tokenizer.md for
version and licence), fetched with `apt-get download` into Scripts/out/ (git-ignored), roff
markup stripped. Plus a hand-written list of tricky lines (tricky_lines.txt).

Writes into --out (Tests/OrochiTests/Fixtures/tokenizers):
  lines.txt                one test line per line (UTF-8, no newlines inside)
  <variant>/tokenizer.model or tokenizer.json
  <variant>/ids.txt        reference ids of each line (no special tokens), compact: a header
                           "#ids base64 width=W", then per line each id as W base-64 digits
                           (A-Z a-z 0-9 + /, most significant first) -- half the size of decimal
                           text, to keep all fixtures near 2 MB
  <variant>/decoded.txt    "=" when decode(encode(line)) == line, else "+" and the decoded text
  <variant>/special.txt    ids with special tokens for the first 20 lines
  <variant>/long.txt       for the sentencepiece variants: the ids.txt format with one row, the
                           reference ids of one long line without spaces (about 230 KB) that
                           the tests rebuild from lines.txt (see long_line)
"""
import argparse, glob, gzip, json, os, random, re, subprocess, sys

import sentencepiece as spm
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "..", "out")
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
ROFF_ESCAPES = re.compile(r"\\f(\(..|\[[^\]]*\]|.)|\\[,/&|^%]|\\\*\(..|\\\*.|\\s[-+]?\d")


def manpage_lines():
    debs = glob.glob(os.path.join(WORK, "manpages-ja_*.deb"))
    if not debs:
        subprocess.run(["apt-get", "download", "manpages-ja"], cwd=WORK, check=True)
        debs = glob.glob(os.path.join(WORK, "manpages-ja_*.deb"))
    root = os.path.join(WORK, "mp")
    if not os.path.isdir(root):
        subprocess.run(["dpkg", "-x", debs[0], root], check=True)
    seen, out = set(), []
    for path in sorted(glob.glob(os.path.join(root, "usr/share/man/ja/*/*.gz"))):
        with gzip.open(path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        for raw in text.split("\n"):
            if raw.startswith((".", "'")) or not JAPANESE.search(raw):
                continue
            line = ROFF_ESCAPES.sub("", raw).replace("\\-", "-").replace("\\e", "\\").strip("\r")
            if line and "\ufffd" not in line and line not in seen:
                seen.add(line)
                out.append(line)
    return out


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


ID_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def compact_ids(rows):
    """The ids.txt format (see the module docstring)."""
    largest = max((max(row) for row in rows if row), default=0)
    width = 1
    while 64 ** width <= largest:
        width += 1
    def encode(value):
        return "".join(ID_DIGITS[(value >> (6 * k)) & 63] for k in reversed(range(width)))
    return [f"#ids base64 width={width}"] + ["".join(encode(v) for v in row) for row in rows]


def write_reference(directory, lines, encode, decode, encode_special):
    ids = [encode(line) for line in lines]
    write_lines(os.path.join(directory, "ids.txt"), compact_ids(ids))
    decoded = []
    for line, x in zip(lines, ids):
        text = decode(x)
        assert "\n" not in text
        decoded.append("=" if text == line else "+" + text)
    write_lines(os.path.join(directory, "decoded.txt"), decoded)
    write_lines(os.path.join(directory, "special.txt"),
                [" ".join(map(str, encode_special(line))) for line in lines[:20]])


SP_VARIANTS = {
    # name: trainer options
    "sp-unigram-nmt-nfkc": dict(model_type="unigram", normalization_rule_name="nmt_nfkc"),
    "sp-unigram-nfkc-bytes-digits": dict(model_type="unigram", normalization_rule_name="nfkc",
                                          byte_fallback=True, split_digits=True,
                                          user_defined_symbols=["<mask>", "【注意】"]),
    "sp-unigram-identity-suffix": dict(model_type="unigram", normalization_rule_name="identity",
                                       treat_whitespace_as_suffix=True, remove_extra_whitespaces=False,
                                       split_by_unicode_script=False, max_sentencepiece_length=4),
    "sp-bpe-nmt-nfkc-bytes": dict(model_type="bpe", normalization_rule_name="nmt_nfkc",
                                  byte_fallback=True),
    "sp-bpe-identity-digits-unk": dict(model_type="bpe", normalization_rule_name="identity",
                                       split_digits=True, add_dummy_prefix=False,
                                       split_by_number=False, split_by_whitespace=False,
                                       character_coverage=0.995, control_symbols=["<sep>"]),
}


def train_sentencepiece(train_file, out_dir, lines, vocab_size):
    for name, options in SP_VARIANTS.items():
        directory = os.path.join(out_dir, name)
        os.makedirs(directory, exist_ok=True)
        prefix = os.path.join(WORK, name)
        spm.SentencePieceTrainer.train(
            input=train_file, model_prefix=prefix, vocab_size=vocab_size,
            character_coverage=options.pop("character_coverage", 0.9995),
            input_sentence_size=60000, shuffle_input_sentence=True, seed_sentencepiece_size=200000,
            num_threads=2, minloglevel=2, **options)
        os.replace(prefix + ".model", os.path.join(directory, "tokenizer.model"))
        sp = spm.SentencePieceProcessor(model_file=os.path.join(directory, "tokenizer.model"))
        write_reference(directory, lines, sp.encode, sp.decode,
                        lambda line: sp.encode(line, add_bos=True))
        print(name, "vocab", sp.get_piece_size(), file=sys.stderr)


def hf_write(tok, directory, lines):
    os.makedirs(directory, exist_ok=True)
    tok.save(os.path.join(directory, "tokenizer.json"))
    tok = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
    write_reference(directory, lines,
                    lambda line: tok.encode(line, add_special_tokens=False).ids,
                    lambda ids: tok.decode(ids),
                    lambda line: tok.encode(line, add_special_tokens=True).ids)


def add_byte_pieces(tok):
    """tokenizers' BpeTrainer has no byte_fallback option: append <0x00>..<0xFF> to the vocab."""
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    for b in range(256):
        piece = "<0x%02X>" % b
        if piece not in vocab:
            vocab[piece] = len(vocab)
    data["model"]["byte_fallback"] = True
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False))


def train_hf(train_file, out_dir, lines, vocab_size, unigram_vocab_size):
    # GPT-2 style byte-level BPE.
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single="$A <|endoftext|>", special_tokens=[("<|endoftext|>", 0)])
    tok.train([train_file], trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    hf_write(tok, os.path.join(out_dir, "hf-bpe-bytelevel"), lines)

    # Llama-style Metaspace BPE with byte fallback.
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.train([train_file], trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False))
    tok = add_byte_pieces(tok)
    # The decoder Llama's tokenizer.json uses.
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    hf_write(tok, os.path.join(out_dir, "hf-bpe-metaspace-bytes"), lines)

    # Unigram with NFKC.
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train([train_file], trainers.UnigramTrainer(
        vocab_size=unigram_vocab_size, special_tokens=["<unk>", "<s>", "</s>"], unk_token="<unk>",
        show_progress=False))
    tok.add_special_tokens(["<|user|>"])
    tok.add_tokens(["システム"])
    hf_write(tok, os.path.join(out_dir, "hf-unigram-nfkc"), lines)

    # A pipeline of the other normalizers and pre-tokenizers, WordPiece-free BPE with unk.
    tok = Tokenizer(models.BPE(unk_token="[UNK]", fuse_unk=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(),
                                           normalizers.Replace("\t", " "), normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(pattern=" ", behavior="removed"),
        pre_tokenizers.Punctuation(behavior="isolated"),
        pre_tokenizers.Digits(individual_digits=True)])
    tok.decoder = decoders.Fuse()
    tok.train([train_file], trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["[UNK]", "[CLS]", "[SEP]"],
        limit_alphabet=1500, show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    hf_write(tok, os.path.join(out_dir, "hf-bpe-pipeline"), lines)


def precompiled_from_sentencepiece(out_dir, lines, source="sp-unigram-nmt-nfkc"):
    """tokenizers' Unigram + Precompiled normalizer built from a sentencepiece model (as the
    T5/ALBERT converters do). Its tokenizer.json would be ~440 KB, mostly the vocabulary and the
    base64 charsmap that the source .model already holds, so the fixture keeps a skeleton with
    both emptied; the tests put them back from ../<source>/tokenizer.model."""
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import Regex
    proto = sentencepiece_model_pb2.ModelProto()
    with open(os.path.join(out_dir, source, "tokenizer.model"), "rb") as f:
        proto.ParseFromString(f.read())
    tok = Tokenizer(models.Unigram([(p.piece, p.score) for p in proto.pieces], unk_id=proto.trainer_spec.unk_id,
                                   byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap),
                                           normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    directory = os.path.join(out_dir, "hf-unigram-precompiled")
    os.makedirs(directory, exist_ok=True)
    write_reference(directory, lines,
                    lambda line: tok.encode(line, add_special_tokens=False).ids,
                    lambda ids: tok.decode(ids),
                    lambda line: tok.encode(line, add_special_tokens=True).ids)
    data = json.loads(tok.to_str())
    data["model"]["vocab"] = []
    data["normalizer"]["normalizers"][0]["precompiled_charsmap"] = ""
    data["orochi_fill_from"] = f"../{source}/tokenizer.model"
    with open(os.path.join(directory, "tokenizer.skeleton.json"), "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)


def unused_from_sentencepiece(out_dir, lines):
    """Models whose pieces are partly marked UNUSED (as one does to ban pieces): derived from
    two committed models by a list of piece ids, which is all the fixture stores besides the
    reference ids; the tests apply the list to the source model."""
    from sentencepiece import sentencepiece_model_pb2
    for name, source in (("sp-bpe-unused", "sp-bpe-identity-digits-unk"), ("sp-unigram-unused", "sp-unigram-identity-suffix")):
        proto = sentencepiece_model_pb2.ModelProto()
        with open(os.path.join(out_dir, source, "tokenizer.model"), "rb") as f:
            proto.ParseFromString(f.read())
        normal = sentencepiece_model_pb2.ModelProto.SentencePiece.NORMAL
        unused = [i for i, p in enumerate(proto.pieces)
                  if p.type == normal and len(p.piece) >= 2 and i % 5 == 0]
        for i in unused:
            proto.pieces[i].type = sentencepiece_model_pb2.ModelProto.SentencePiece.UNUSED
        model_path = os.path.join(WORK, name + ".model")
        with open(model_path, "wb") as f:
            f.write(proto.SerializeToString())
        sp = spm.SentencePieceProcessor(model_file=model_path)
        directory = os.path.join(out_dir, name)
        os.makedirs(directory, exist_ok=True)
        write_reference(directory, lines, sp.encode, sp.decode, lambda line: sp.encode(line, add_bos=True))
        with open(os.path.join(directory, "derive.json"), "w", encoding="utf-8") as f:
            json.dump({"from": f"../{source}/tokenizer.model", "unused": unused}, f)


LONG_LINE_PASSES = 3
LONG_LINE_ROTATION = 97


def long_line(lines):
    """One long line of Japanese without spaces, rebuilt by the tests from lines.txt alone:
    every line with its spaces and tabs removed, all lines joined, LONG_LINE_PASSES times, pass r
    starting at line r * LONG_LINE_ROTATION. On such a line the unigram Viterbi's path scores
    grow past 100,000, where sentencepiece's float32 arithmetic and its score reset decide
    near-ties (TokenizerParityTests.longLine)."""
    stripped = ["".join(ch for ch in line if ch not in " \t") for line in lines]
    n = len(stripped)
    return "".join(stripped[(i + r * LONG_LINE_ROTATION) % n]
                   for r in range(LONG_LINE_PASSES) for i in range(n))


def sentencepiece_variant(out_dir, name):
    """A committed sentencepiece variant as sentencepiece loads it (derived ones rebuilt)."""
    from sentencepiece import sentencepiece_model_pb2
    directory = os.path.join(out_dir, name)
    model = os.path.join(directory, "tokenizer.model")
    if os.path.exists(model):
        return spm.SentencePieceProcessor(model_file=model)
    with open(os.path.join(directory, "derive.json"), encoding="utf-8") as f:
        derivation = json.load(f)
    proto = sentencepiece_model_pb2.ModelProto()
    with open(os.path.join(directory, derivation["from"]), "rb") as f:
        proto.ParseFromString(f.read())
    for i in derivation["unused"]:
        proto.pieces[i].type = sentencepiece_model_pb2.ModelProto.SentencePiece.UNUSED
    return spm.SentencePieceProcessor(model_proto=proto.SerializeToString())


def write_long_references(out_dir, lines):
    text = long_line(lines)
    for name in sorted(os.listdir(out_dir)):
        if not name.startswith("sp-"):
            continue
        sp = sentencepiece_variant(out_dir, name)
        write_lines(os.path.join(out_dir, name, "long.txt"), compact_ids([sp.encode(text)]))
    print(f"long line: {len(text.encode())} bytes", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="Tests/OrochiTests/Fixtures/tokenizers")
    parser.add_argument("--test-lines", type=int, default=1000)
    parser.add_argument("--vocab-size", type=int, default=2000)
    parser.add_argument("--hf-vocab-size", type=int, default=1200, help="BPE variants of tokenizers")
    parser.add_argument("--only", choices=["sp", "hf", "derived", "long"], help="regenerate some variants only")
    args = parser.parse_args()
    os.makedirs(WORK, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)

    if args.only == "long":  # the long-line references only, from the committed lines.txt
        with open(os.path.join(args.out, "lines.txt"), encoding="utf-8", newline="\n") as f:
            write_long_references(args.out, f.read().split("\n")[:-1])
        return

    corpus = manpage_lines()
    rng = random.Random(5)
    rng.shuffle(corpus)
    held_out = [line for line in corpus[:4 * args.test_lines] if len(line) <= 100][:args.test_lines]
    with open(os.path.join(HERE, "tricky_lines.txt"), encoding="utf-8") as f:
        tricky = [line.rstrip("\n") for line in f if not line.startswith("#!")]
    tricky = [line.replace("\\t", "\t") for line in tricky if line]
    lines = tricky + held_out
    write_lines(os.path.join(args.out, "lines.txt"), lines)

    train_file = os.path.join(WORK, "train.txt")
    write_lines(train_file, corpus[4 * args.test_lines:] + tricky[:20])
    print(f"{len(corpus)} corpus lines, {len(lines)} test lines", file=sys.stderr)
    if args.only in (None, "sp"):
        train_sentencepiece(train_file, args.out, lines, args.vocab_size)
    if args.only in (None, "hf"):
        train_hf(train_file, args.out, lines, args.hf_vocab_size, args.vocab_size)
    if args.only in (None, "sp", "derived"):
        precompiled_from_sentencepiece(args.out, lines)
        unused_from_sentencepiece(args.out, lines)
        write_long_references(args.out, lines)


if __name__ == "__main__":
    main()
