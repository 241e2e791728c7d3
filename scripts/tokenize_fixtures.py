"""Expected ids of the real tokenizers in tests/fixtures/tokenizers/ (and Llama 3's, read from the
team's shared/ folder because its licence keeps it out of the repository), from the reference
libraries, so that the tests need no Python:

    python3 -m venv /tmp/venvt && /tmp/venvt/bin/pip install tokenizers sentencepiece
    /tmp/venvt/bin/python scripts/tokenize_fixtures.py [SHARED_TOKENIZERS_DIR]

`tokenizer.json` files are encoded by Hugging Face's `tokenizers` (the Rust library) with special
tokens left as text (`encode_special_tokens`) and none added, as `Tokenizer.encode` does here;
SentencePiece `.model` files by Google's `sentencepiece`, without BOS. Writes
tests/fixtures/tokenizers/expected.json.gz: for each tokenizer the number of ids and a digest of
every paragraph of corpora/tinystories/valid_head.txt (text between blank lines, stripped, as
tests/data/_tok512.ts splits it) and of the whole text, and the full ids of the edge cases
(llama.cpp's tokenizer test strings and a few more). A digest is the first 4 bytes of the SHA-256
of the ids as little-endian uint32; the paragraphs' digests are concatenated and base64-encoded.
"""
import base64
import gzip
import hashlib
import json
import os
import re
import struct
import sys

import sentencepiece
import tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "tokenizers")
TEXT = os.path.join(ROOT, "corpora", "tinystories", "valid_head.txt")
VECTORS = os.path.join(ROOT, "tests", "fixtures", "gguf_vocab", "ggml-vocab-gpt-2.gguf.inp")
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "tokenizers")
BLANK_LINE = re.compile(r"\s*\n[^\S\n]*\n\s*")
SEPARATOR = "\n__ggml_vocab_test__\n"

# Name -> (file, kind); the files under FIXTURES are gzip-compressed, Llama 3's is read from SHARED.
TOKENIZERS = {
    "smollm2": ("smollm2/tokenizer.json.gz", "json"),
    "qwen2": ("qwen2/tokenizer.json.gz", "json"),
    "phi3": ("phi3/tokenizer.json.gz", "json"),
    "llama2": ("llama2/tokenizer.json.gz", "json"),
    "llama2_model": ("llama2/tokenizer.model.gz", "model"),
    "mistral_v1": ("mistral/tokenizer_v1.model.gz", "model"),
    "mistral_v3": ("mistral/tokenizer_v3.model.gz", "model"),
    "llama3": (os.path.join(SHARED, "llama3", "tokenizer.json"), "json"),
}

# Beyond llama.cpp's strings: Unicode whitespace and digits the pre-tokenizers treat specially,
# special tokens written as text, long runs.
EXTRA = [
    "Héllo, wörld! 你好 🙂\n\n  tabs\tand <|endoftext|> stays text.  x   \n",
    "digits 1234567890, contractions I'm you're they'll we've, CAPS and    spaces\r\n",
    "next\u0085line, bom\ufeffhere, nbsp\u00a0and ideographic\u3000space, thin\u2009space",
    "½ ² ٣٤٥ ０１２ Ⅻ numbers of other kinds",
    "controls \x04\x06\x13\x14\x16\x1d and \U00040000 plane 4, bytes some vocabularies lack",
    "<s> </s> <unk> <|im_start|> <|begin_of_text|> [INST] stay text",
    "x" * 300,
    "word " * 50,
]


def load(name):
    path, kind = TOKENIZERS[name]
    if not os.path.isabs(path):
        with gzip.open(os.path.join(FIXTURES, path)) as f:
            data = f.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    if kind == "json":
        t = tokenizers.Tokenizer.from_str(data.decode("utf-8"))
        t.encode_special_tokens = True
        return lambda text: t.encode(text, add_special_tokens=False).ids
    sp = sentencepiece.SentencePieceProcessor(model_proto=data)
    return lambda text: sp.encode(text)


def digest(ids):
    return hashlib.sha256(struct.pack(f"<{len(ids)}I", *ids)).digest()[:4]


def main():
    with open(TEXT, encoding="utf-8") as f:
        text = f.read()
    paragraphs = [p for p in BLANK_LINE.split(text.strip()) if p]
    with open(VECTORS, encoding="utf-8") as f:
        vectors = f.read()
    cases = vectors.split(SEPARATOR)
    if vectors.endswith(SEPARATOR[1:]):
        cases[-1] = cases[-1][: -len(SEPARATOR) + 1]
    cases = [c for c in cases if c != ""] + [""] + EXTRA
    out = {
        "text": {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "paragraphs": len(paragraphs)},
        "cases": cases,
        "versions": {"tokenizers": tokenizers.__version__, "sentencepiece": sentencepiece.__version__},
        "tokenizers": {},
    }
    for name in TOKENIZERS:
        encode = load(name)
        ids = [encode(p) for p in paragraphs]
        whole = encode(text)
        out["tokenizers"][name] = {
            "tokens": sum(len(i) for i in ids),
            "digests": base64.b64encode(b"".join(digest(i) for i in ids)).decode("ascii"),
            "whole": {"tokens": len(whole), "digest": digest(whole).hex()},
            "cases": [encode(c) for c in cases],
        }
        print(f"{name}: {out['tokenizers'][name]['tokens']} ids in {len(paragraphs)} paragraphs, "
              f"{len(whole)} for the whole text")
    blob = json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    with open(os.path.join(FIXTURES, "expected.json.gz"), "wb") as f:
        f.write(gzip.compress(blob, compresslevel=9, mtime=0))


if __name__ == "__main__":
    main()
