#!/usr/bin/env python3
"""Builds Orochi's Japanese corpus from Debian's Japanese documentation packages.

Steps: apt-get download + dpkg -x each package listed in packages.txt (and fetch
Translation-ja, the Japanese package descriptions, through apt into a private list
directory), extract the prose (HTML: block-level text; man pages: roff text without
macros; descriptions: one per package), normalise (NFKC, joined wrapped lines,
collapsed white space), filter paragraphs (length, share of Japanese characters,
at least some kana), clean the training paragraphs (strip section and figure numbers;
drop paragraphs dense in digits, symbols or option syntax), deduplicate paragraphs,
and write

  out/train.txt        documents separated by a blank line, one paragraph per line
  out/valid.txt        the held-out package (--valid), same format, not cleaned, minus
                       any paragraph that also occurs in the training split
  out/valid-clean.txt  the held-out package with the training split's cleaning
  out/dropped.tsv      every paragraph the cleaning dropped (both splits), with its rule
  out/stats.json       per-package versions, licences, documents, paragraphs,
                       characters, and what the cleaning stripped and dropped, per rule

Only the standard library, apt-get, dpkg and apt-helper are needed.
"""
import argparse
import glob
import gzip
import hashlib
import html.parser
import json
import os
import re
import shlex
import subprocess
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------- normalisation

JA = r"\u3000-\u303f\u3040-\u309f\u30a0-\u30ff\u4e00-\u9fff\u3400-\u4dbf\uff00-\uffef"
RE_JA_GAP = re.compile(r"(?<=[%s])\s+(?=[%s])" % (JA, JA))
RE_WS = re.compile(r"\s+")
RE_KANA = re.compile(r"[\u3040-\u309f\u30a0-\u30ff]")
RE_JACHAR = re.compile(r"[\u3040-\u309f\u30a0-\u30ff\u4e00-\u9fff\u3400-\u4dbf\u3000-\u303f]")
RE_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b\ufeff]")


def normalise(text):
    text = RE_CTRL.sub("", text)
    text = unicodedata.normalize("NFKC", text)
    text = RE_JA_GAP.sub("", text)  # wrapped Japanese lines join without a space
    return RE_WS.sub(" ", text).strip()


def keep(par, min_chars, min_ja, min_kana):
    if len(par) < min_chars or len(par) > 5000:
        return False
    nonspace = sum(1 for c in par if not c.isspace())
    ja = len(RE_JACHAR.findall(par))
    kana = len(RE_KANA.findall(par))
    return nonspace > 0 and ja / nonspace >= min_ja and kana >= min_kana


# ---------------------------------------------------------------- cleaning
# The models learn to continue a digit with more digits: section numbers ("14.28.2."),
# figure numbers, spreadsheet examples and version lists teach them strings of digits.
# Cleaning runs after the filter above, on the paragraphs it keeps: a numbering prefix
# is stripped, then a paragraph is dropped by the first rule that fires (see DATA.md).

# "14.28.2. ", "1. ", "図14.119 ", "表 3-1 " at the start of a paragraph (headings,
# captions; a trailing dot or a 図/表/例 prefix is required, so "8 ビット" stays) and
# the permalink mark "¶" at its end.
RE_NUMBERING = re.compile(r"^(?:(?:図|表|例)\s*\d+(?:[.-]\d+)*\.?|\d+(?:\.\d+)*\.)\s+")
RE_PILCROW = re.compile(r"\s*¶$")
# Command-line option syntax: -x, -Wall, --foo, --foo=BAR (the value in ASCII only).
RE_OPTION = re.compile(r"(?<![\w-])--?[A-Za-z0-9?][\w-]*(?:=[\w./:,%@+\\-]*)?")
CLEAN_RULES = ("numbering", "digits", "symbols", "options")


def strip_numbering(par):
    par = RE_NUMBERING.sub("", par, count=1)
    return RE_PILCROW.sub("", par)


def non_prose(par):
    """Shares of the non-space characters that are digits, symbols (Unicode punctuation
    and symbols outside the CJK punctuation block: after NFKC that includes ASCII
    brackets, which prose uses too) and characters of option syntax."""
    nonspace = [c for c in par if not c.isspace()]
    n = max(1, len(nonspace))
    digits = sum(1 for c in nonspace if c.isdigit())
    symbols = sum(1 for c in nonspace if unicodedata.category(c)[0] in "PS"
                  and not "\u3000" <= c <= "\u303f")
    options = sum(len(m.group(0)) for m in RE_OPTION.finditer(par))
    return {"digits": digits / n, "symbols": symbols / n, "options": options / n}


def clean_rule(par, limits):
    """The first rule that drops the paragraph and its share, or (None, 0)."""
    shares = non_prose(par)
    for rule in ("digits", "symbols", "options"):
        if shares[rule] >= limits[rule]:
            return rule, shares[rule]
    return None, 0.0


# ---------------------------------------------------------------- extraction

BLOCK = {"p", "div", "li", "dd", "dt", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th",
         "tr", "br", "table", "ul", "ol", "dl", "section", "article", "blockquote",
         "title", "caption", "figcaption", "body", "header", "footer", "nav", "hr"}
SKIP = {"script", "style", "pre", "head", "noscript", "svg"}  # inline code is kept


class Prose(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.pars, self.buf, self.skip = [], [], 0

    def flush(self):
        if self.buf:
            self.pars.append("".join(self.buf))
            self.buf = []

    def handle_starttag(self, tag, attrs):
        if tag in SKIP:
            self.skip += 1
        elif tag in BLOCK:
            self.flush()

    def handle_endtag(self, tag):
        if tag in SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in BLOCK:
            self.flush()

    def handle_data(self, data):
        if not self.skip:
            self.buf.append(data)


def html_paragraphs(path):
    with open(path, "rb") as f:
        raw = f.read()
    m = re.search(rb'charset=["\']?([A-Za-z0-9_-]+)', raw[:2048])
    enc = m.group(1).decode() if m else "utf-8"
    try:
        text = raw.decode(enc, errors="replace")
    except LookupError:
        text = raw.decode("utf-8", errors="replace")
    p = Prose()
    p.feed(text)
    p.close()
    p.flush()
    return p.pars


ROFF_ESC = [
    (re.compile(r"\\f(\(..|\[[^\]]*\]|.)"), ""),   # font changes
    (re.compile(r"\\s[+-]?\d"), ""),                 # size changes
    (re.compile(r"\\\*(\(..|\[[^\]]*\]|.)"), ""),   # strings
    (re.compile(r"\\\((em|en)"), "—"),
    (re.compile(r"\\\((lq|rq|dq)"), '"'),
    (re.compile(r"\\\((oq|cq)"), "'"),
    (re.compile(r"\\\((bu|ci)"), "・"),
    (re.compile(r"\\\(..|\\\[[^\]]*\]"), ""),
    (re.compile(r"\\[&|^:%c,/]"), ""),            # \, \/ italic corrections: zero width
    (re.compile(r"\\0"), " "),                      # digit-width space
    (re.compile(r"\\[-]"), "-"),
    (re.compile(r"\\e"), "\\\\"),
    (re.compile(r"\\ "), " "),
    (re.compile(r"\\\"(.*)$"), ""),
]
PAR_MACROS = {"PP", "P", "LP", "TP", "IP", "SH", "SS", "HP", "sp", "br", "RS", "RE",
              "nf", "fi", "TH", "in", "ti", "bp", "ne", "EX", "EE", "TS", "TE"}
TEXT_MACROS = {"B", "I", "BR", "RB", "IR", "RI", "BI", "IB", "SM", "SB"}


def roff_text(s):
    for rx, rep in ROFF_ESC:
        s = rx.sub(rep, s)
    return s.replace("\\\\", "\\")


def man_paragraphs(path):
    with gzip.open(path, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    pars, buf, nofill = [], [], False
    for line in text.split("\n"):
        if line.startswith((".", "'")):
            parts = line[1:].strip().split(None, 1)
            if not parts:
                continue
            mac, arg = parts[0], (parts[1] if len(parts) > 1 else "")
            if mac in ("nf", "EX", "TS"):
                nofill = True
            elif mac in ("fi", "EE", "TE"):
                nofill = False
            if mac in PAR_MACROS:
                if buf:
                    pars.append(" ".join(buf))
                    buf = []
                if mac in ("SH", "SS") and arg:
                    pars.append(roff_text(arg.replace('"', "")))
            elif mac in TEXT_MACROS and arg and not nofill:
                buf.append(roff_text(" ".join(shlex_safe(arg))))
            continue
        if nofill:
            continue
        if not line.strip():
            if buf:
                pars.append(" ".join(buf))
                buf = []
            continue
        buf.append(roff_text(line))
    if buf:
        pars.append(" ".join(buf))
    return pars


def shlex_safe(arg):
    try:
        return shlex.split(arg, posix=True)
    except ValueError:
        return [arg]


def ddtp_documents(text):
    """Translation-ja: one document per package description (short + long)."""
    docs = []
    for stanza in text.split("\n\n"):
        lines = stanza.split("\n")
        short, body = None, []
        for i, line in enumerate(lines):
            if line.startswith("Description-ja:"):
                short = line.split(":", 1)[1].strip()
                body = lines[i + 1:]
                break
        if short is None:
            continue
        pars, buf = [short], []
        for line in body:
            if not line.startswith(" "):
                break
            line = line[1:]
            if line.strip() == ".":
                if buf:
                    pars.append(" ".join(buf))
                buf = []
            else:
                buf.append(line)
        if buf:
            pars.append(" ".join(buf))
        docs.append(pars)
    return docs


# ---------------------------------------------------------------- packages

def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def package_lists(outdir):
    """Debian's package index in a private list directory, fetched once: a new machine's
    apt has no lists at all (nobody ran apt-get update), and the system's may be stale."""
    lists = os.path.abspath(os.path.join(outdir, "apt-lists-packages"))
    os.makedirs(os.path.join(lists, "partial"), exist_ok=True)
    for attempt in range(2):  # apt-get update exits 0 even when a download failed
        if glob.glob(os.path.join(lists, "*_Packages*")):
            return lists
        run(["apt-get", "update", "-q", "-o", "Dir::State::Lists=" + lists, "-o", "APT::Sandbox::User=root",
             "-o", "Acquire::Languages=none"], stdout=subprocess.DEVNULL)
    sys.exit("apt-get update did not fetch the package index into %s: check the network "
             "and run again" % lists)


def fetch_package(name, debdir, xdir):
    """Returns (version, root of the extracted tree)."""
    debs = glob.glob(os.path.join(debdir, name + "_*.deb"))
    if not debs:
        lists = package_lists(os.path.dirname(os.path.normpath(debdir)))
        # The private lists, and no cache file (apt would mix it with the system's lists).
        run(["apt-get", "download", "-q", "-o", "Dir::State::Lists=" + lists,
             "-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",
             "-o", "APT::Sandbox::User=root", name], cwd=debdir, stdout=subprocess.DEVNULL)
        debs = glob.glob(os.path.join(debdir, name + "_*.deb"))
    deb = sorted(debs)[-1]
    version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], check=True,
                             capture_output=True, text=True).stdout.strip()
    root = os.path.join(xdir, name)
    if not os.path.isdir(root):
        run(["dpkg", "-x", deb, root + ".tmp"])
        os.rename(root + ".tmp", root)
    return version, root


def fetch_translation(outdir):
    """Japanese package descriptions through apt, into a private list directory."""
    lists = os.path.abspath(os.path.join(outdir, "apt-lists"))
    os.makedirs(os.path.join(lists, "partial"), exist_ok=True)
    found = glob.glob(os.path.join(lists, "*_main_i18n_Translation-ja*"))
    for attempt in range(2):  # apt-get update exits 0 even when a download failed
        if found:
            break
        # APT::Sandbox::User=root: apt's _apt user may not be able to enter the work tree.
        run(["apt-get", "update", "-q", "-o", "Dir::State::Lists=" + lists, "-o", "APT::Sandbox::User=root",
             "-o", "Acquire::Languages=ja",
             "-o", "Acquire::IndexTargets::deb::Packages::DefaultEnabled=false"],
            stdout=subprocess.DEVNULL)
        found = glob.glob(os.path.join(lists, "*_main_i18n_Translation-ja*"))
    if not found:
        sys.exit("apt-get update did not fetch Translation-ja into %s: check the network "
                 "and run again" % lists)
    path = sorted(found)[0]
    text = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", path], check=True,
                          capture_output=True).stdout.decode("utf-8", "replace")
    release = glob.glob(os.path.join(lists, "*_dists_bookworm_InRelease"))
    date = ""
    if release:
        with open(release[0], encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("Date:"):
                    date = line.split(":", 1)[1].strip()
                    break
        for_ver = "bookworm main (InRelease " + date + ")"
    else:
        for_ver = "bookworm main"
    return for_ver, text


def documents(name, kind, root):
    """Yields (document id, list of raw paragraphs)."""
    if kind == "man":
        for path in sorted(glob.glob(os.path.join(root, "usr/share/man/ja/**/*.gz"),
                                     recursive=True)):
            if os.path.islink(path):
                continue
            yield os.path.relpath(path, root), man_paragraphs(path)
    elif kind == "html":
        for path in sorted(glob.glob(os.path.join(root, "usr/share/**/*.htm*"),
                                     recursive=True)):
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            yield os.path.relpath(path, root), html_paragraphs(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--packages", default=os.path.join(HERE, "packages.txt"))
    ap.add_argument("--valid", default="debian-reference-ja",
                    help="source package held out as the validation set")
    ap.add_argument("--min-chars", type=int, default=12)
    ap.add_argument("--min-ja", type=float, default=0.3,
                    help="minimum share of Japanese characters among non-space ones")
    ap.add_argument("--min-kana", type=int, default=2)
    ap.add_argument("--max-digits", type=float, default=0.2,
                    help="cleaning: drop a paragraph whose non-space characters are at least "
                         "this share digits")
    ap.add_argument("--max-symbols", type=float, default=0.3,
                    help="cleaning: ... at least this share punctuation and symbols")
    ap.add_argument("--max-options", type=float, default=0.4,
                    help="cleaning: ... at least this share command-line option syntax")
    ap.add_argument("--no-clean", action="store_true",
                    help="write the training split without cleaning (the corpus of the "
                         "models trained before it); the counts are still reported")
    args = ap.parse_args()

    debdir = os.path.join(args.out, "debs")
    xdir = os.path.join(args.out, "extract")
    os.makedirs(debdir, exist_ok=True)
    os.makedirs(xdir, exist_ok=True)

    pkgs = []
    with open(args.packages, encoding="utf-8") as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, licence, kind = shlex.split(line)
                pkgs.append((name, licence, kind))
    if args.valid not in [p[0] for p in pkgs]:
        sys.exit("--valid %s is not in %s" % (args.valid, args.packages))

    # Validation package first, so that its paragraphs are known when training
    # paragraphs are deduplicated (and vice versa at the end).
    order = sorted(pkgs, key=lambda p: p[0] != args.valid)
    limits = {"digits": args.max_digits, "symbols": args.max_symbols,
              "options": args.max_options}
    # seen: every kept paragraph (as written); held_out: the cleaned forms of the held-out
    # paragraphs, so that no training paragraph equals one, cleaned or not
    seen, held_out, seen_valid_clean = set(), set(), set()
    sha = lambda p: hashlib.sha1(p.encode("utf-8")).digest()
    # "valid-clean" is the held-out package with the training cleaning applied; "valid"
    # stays uncleaned so that its figures compare with those of earlier models.
    split_docs = {"train": [], "valid": [], "valid-clean": []}
    stats = {"valid_package": args.valid, "filters": vars(args), "packages": []}
    dropped_log = open(os.path.join(args.out, "dropped.tsv"), "w", encoding="utf-8")
    dropped_log.write("package\trule\tshare\tparagraph\n")
    for name, licence, kind in order:
        if kind == "ddtp":
            version, text = fetch_translation(args.out)
            raw_docs = [("Translation-ja:%d" % i, d) for i, d in enumerate(ddtp_documents(text))]
        else:
            version, root = fetch_package(name, debdir, xdir)
            raw_docs = documents(name, kind, root)
        split = "valid" if name == args.valid else "train"
        st = {"package": name, "version": version, "licence": licence, "kind": kind,
              "split": split, "documents": 0, "paragraphs": 0, "characters": 0,
              "raw_paragraphs": 0, "duplicates": 0,
              # counted on the paragraphs that pass the filter, before deduplication;
              # characters are those of the paragraph before cleaning
              "cleaning": {"applied": split == "train" and not args.no_clean,
                           "numbering_stripped": {"paragraphs": 0, "characters": 0},
                           "dropped": {r: {"paragraphs": 0, "characters": 0}
                                       for r in CLEAN_RULES}}}
        cl = st["cleaning"]
        for doc_id, raw in raw_docs:
            kept, kept_clean = [], []
            for par in raw:
                st["raw_paragraphs"] += 1
                par = normalise(par)
                if not keep(par, args.min_chars, args.min_ja, args.min_kana):
                    continue
                clean = strip_numbering(par)
                if clean != par:
                    cl["numbering_stripped"]["paragraphs"] += 1
                    cl["numbering_stripped"]["characters"] += len(par) - len(clean)
                if clean != par and not keep(clean, args.min_chars, args.min_ja, args.min_kana):
                    rule, share = "numbering", 0.0
                else:
                    rule, share = clean_rule(clean, limits)
                if rule:
                    clean = None
                    cl["dropped"][rule]["paragraphs"] += 1
                    cl["dropped"][rule]["characters"] += len(par)
                    dropped_log.write("%s\t%s\t%.3f\t%s\n" % (name, rule, share, par))
                if split == "valid":
                    if clean:
                        held_out.add(sha(clean))
                        if sha(clean) not in seen_valid_clean:
                            seen_valid_clean.add(sha(clean))
                            kept_clean.append(clean)
                elif not args.no_clean:
                    if not clean:
                        continue
                    par = clean
                h = sha(par)
                if h in seen or (split == "train" and not args.no_clean and h in held_out):
                    st["duplicates"] += 1
                    continue
                seen.add(h)
                kept.append(par)
            if kept:
                split_docs[split].append(kept)
                st["documents"] += 1
                st["paragraphs"] += len(kept)
                st["characters"] += sum(len(p) for p in kept)
            if kept_clean:
                split_docs["valid-clean"].append(kept_clean)
        stats["packages"].append(st)
        print("%-24s %-34s %-5s docs %6d  paragraphs %7d  chars %9d  dups %6d  cleaned %s" % (
            name, version[:34], split, st["documents"], st["paragraphs"],
            st["characters"], st["duplicates"],
            " ".join("%s %d" % (r, cl["dropped"][r]["paragraphs"]) for r in CLEAN_RULES)
            + ("" if cl["applied"] else " (not applied)")), flush=True)
    dropped_log.close()

    for split, docs in split_docs.items():
        path = os.path.join(args.out, split + ".txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n\n".join("\n".join(d) for d in docs) + "\n")
        chars = sum(len(p) for d in docs for p in d)
        pars = sum(len(d) for d in docs)
        stats[split] = {"documents": len(docs), "paragraphs": pars, "characters": chars}
        print("%s: %d documents, %d paragraphs (lines), %d characters -> %s" % (
            split, len(docs), pars, chars, path))
    for split in ("train", "valid"):
        pk = [p for p in stats["packages"] if p["split"] == split]
        stats["cleaning_" + split] = {
            "applied": pk[0]["cleaning"]["applied"],
            "numbering_stripped": {k: sum(p["cleaning"]["numbering_stripped"][k] for p in pk)
                                   for k in ("paragraphs", "characters")},
            "dropped": {r: {k: sum(p["cleaning"]["dropped"][r][k] for p in pk)
                            for k in ("paragraphs", "characters")} for r in CLEAN_RULES}}
        c = stats["cleaning_" + split]
        print("cleaning of %s%s: numbering stripped from %d paragraphs (%d characters); "
              "dropped %s" % (split, "" if c["applied"] else " (reported, not applied)",
                              c["numbering_stripped"]["paragraphs"],
                              c["numbering_stripped"]["characters"],
                              ", ".join("%s %d (%d chars)" % (r, c["dropped"][r]["paragraphs"],
                                                              c["dropped"][r]["characters"])
                                        for r in CLEAN_RULES)))
    with open(os.path.join(args.out, "stats.json"), "w", encoding="utf-8") as f:
        json.dump(stats, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
