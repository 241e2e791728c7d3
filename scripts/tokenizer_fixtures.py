"""Expected SentencePiece ids for the tokenizer tests, from Google's sentencepiece (Debian's
python3-sentencepiece), so that the tests need no Python:

    /usr/bin/python3 scripts/tokenizer_fixtures.py

Writes tests/fixtures/tok512_tinystories.bin.gz: the ids of every paragraph of
corpora/tinystories/valid_head.txt under models/stories260K/tokenizer.model (tok512), encoded as
llama2.c pretokenised TinyStories (`encode(story.strip())`, here without the BOS the data adds):
uint32 N, N uint32 token counts, N uint32 UTF-8 byte lengths of the paragraphs, then all ids as
uint16, little-endian, gzip-compressed. And tests/fixtures/tok512_cases.json: edge-case strings
with their ids and decoded text under tok512 and the variants of
scripts/sentencepiece_variants.ts (which this script has deno write with the project's
`.model` writer, then loads here: the rewritten tok512 must encode every paragraph exactly as
the original), plus the paragraphs whose ids differ when extra spaces are kept (GGUF files
converted by llama.cpp carry no remove_extra_whitespaces flag, and llama.cpp then keeps them).
"""
import gzip
import json
import os
import re
import struct
import subprocess
import tempfile

import sentencepiece as spm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
MODEL = os.path.join(ROOT, "models", "stories260K", "tokenizer.model")
TEXT = os.path.join(ROOT, "corpora", "tinystories", "valid_head.txt")
# Paragraphs: text between blank lines, stripped (the tests split the same way).
BLANK_LINE = re.compile(r"\s*\n[^\S\n]*\n\s*")

CASES = [
    "",
    " ",
    "   ",
    "Hello world",
    " Hello world",
    "Hello world ",
    "  Hello   world  ",
    "a  b   c    d",
    "line one\nline two\n\nline four\n",
    "\n\nstarts with newlines",
    "tabs\tand\ttabs \t mixed",
    "digits 1234567890 and 3.14159, 42nd",
    "Emoji 🙂🚀 and 👩‍👩‍👧 family",
    "Unicode: café naïve Ångström 日本語 中文 한국어 Ελληνικά русский",
    "zero\u200bwidth and nbsp\u00a0here",
    "literal <s> and </s> and <unk> and <0x0A> stay text",
    "the \u2581 symbol itself, and \u2581\u2581 twice",
    "\ufffd replacement char",
    "Once upon a time, there was a little girl named Lily. She loved to play outside.",
    "\"Quotes,\" she said. 'Single' — dashes… and (brackets) [1] {2}",
    "ALL CAPS SHOUTING!!! and mIxEd CaSe",
    "x" * 300,
    "word " * 50,
]


def paragraphs():
    with open(TEXT, encoding="utf-8") as f:
        text = f.read()
    return [p for p in BLANK_LINE.split(text.strip()) if p]


def main():
    sp = spm.SentencePieceProcessor(model_file=MODEL)
    paras = paragraphs()
    ids = [sp.encode(p) for p in paras]
    for p, i in zip(paras, ids):
        assert sp.decode(i) == re.sub(" {2,}", " ", p), p[:80]
    flat = [t for i in ids for t in i]
    assert max(flat) < 65536
    blob = struct.pack("<I", len(paras))
    blob += struct.pack(f"<{len(paras)}I", *[len(i) for i in ids])
    blob += struct.pack(f"<{len(paras)}I", *[len(p.encode("utf-8")) for p in paras])
    blob += struct.pack(f"<{len(flat)}H", *flat)
    with open(os.path.join(FIXTURES, "tok512_tinystories.bin.gz"), "wb") as f:
        f.write(gzip.compress(blob, compresslevel=9, mtime=0))

    fixture = {"cases": CASES, "ids": {}, "decoded": {}}
    fixture["ids"]["tok512"] = [sp.encode(c) for c in CASES]
    fixture["decoded"]["tok512"] = [sp.decode(i) for i in fixture["ids"]["tok512"]]
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            ["deno", "run", "-A", os.path.join(ROOT, "scripts", "sentencepiece_variants.ts"), out],
            check=True, cwd=ROOT,
        )
        variants = sorted(n[:-6] for n in os.listdir(out) if n.endswith(".model"))
        for name in variants:
            v = spm.SentencePieceProcessor(model_file=os.path.join(out, name + ".model"))
            assert v.get_piece_size() == sp.get_piece_size()
            fixture["ids"][name] = [v.encode(c) for c in CASES]
            fixture["decoded"][name] = [v.decode(i) for i in fixture["ids"][name]]
            if name == "rewritten":
                assert [v.encode(p) for p in paras] == ids, "the rewritten model encodes differently"
                assert fixture["ids"][name] == fixture["ids"]["tok512"]
            if name == "keep_spaces":
                fixture["keep_spaces_paragraphs"] = {
                    str(k): v.encode(p) for k, p in enumerate(paras) if v.encode(p) != ids[k]
                }
    fixture["sentencepiece"] = spm.__version__
    with open(os.path.join(FIXTURES, "tok512_cases.json"), "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"{len(paras)} paragraphs, {len(flat)} ids; {len(CASES)} cases x {len(fixture['ids'])} models; "
          f"{len(fixture['keep_spaces_paragraphs'])} paragraphs differ with extra spaces kept")


if __name__ == "__main__":
    main()
