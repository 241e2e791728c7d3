"""Input files in every form `prepare` reads, for tests/data/prepare_forms_test.ts, written by the
libraries people write them with (pyarrow for Parquet, zstandard and gzip for compression), so
that the tests need no Python:

    python3 -m venv /tmp/venvdata && /tmp/venvdata/bin/pip install pyarrow zstandard
    /tmp/venvdata/bin/python scripts/data_fixtures.py

Writes tests/fixtures/data_forms/: texts.json (the documents, the ground truth the test writes
to .txt files), then the same documents as JSON Lines (.jsonl, .ndjson, .jsonl.gz, .jsonl.zst,
a .jsonl.zst of several zstd frames and a .jsonl.gz of several gzip members, as `zstd -T` /
`pzstd` and `cat` make them), JSON arrays (.json, .json.gz), JSON Lines named .json (as Dolma's
.json.gz), Parquet with snappy (pyarrow's default), zstd and gzip pages and row groups of 4
rows, Parquet and JSON Lines with the text nested under meta.body, plain text compressed
(.txt.gz, .txt.zst: the documents joined by <|endoftext|>), and bad.jsonl with a malformed line
(3) and a record without the field (5).
"""
import gzip
import io
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "data_forms")
TEXT = os.path.join(ROOT, "corpora", "tinystories", "valid_head.txt")


def documents():
    """Eight TinyStories paragraphs and four strings that stress cutting and escaping."""
    with open(TEXT, encoding="utf-8") as f:
        stories = [p.strip() for p in f.read().split("\n\n") if p.strip()][1:9]
    return stories + [
        'Quotes "inside", a backslash \\ and a tab\there.',
        "Line one\r\nline two\n\nA second paragraph with é, 你好 and 🙂.",
        "  leading and trailing spaces  ",
        "[not an array] {not an object}, just text.",
    ]


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def zstd(data):
    return zstandard.ZstdCompressor(level=3).compress(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    docs = documents()
    write("texts.json", (json.dumps(docs, ensure_ascii=False, indent=1) + "\n").encode())
    lines = [json.dumps({"id": i, "text": d}, ensure_ascii=False) for i, d in enumerate(docs)]
    jsonl = ("\n".join(lines) + "\n").encode()
    write("docs.jsonl", jsonl)
    write("docs.ndjson", jsonl)
    write("docs.jsonl.gz", gzip.compress(jsonl, mtime=0))
    write("docs.jsonl.zst", zstd(jsonl))
    half = len(lines) // 2
    first = ("\n".join(lines[:half]) + "\n").encode()
    rest = ("\n".join(lines[half:]) + "\n").encode()
    write("frames.jsonl.zst", zstd(first) + zstd(rest))
    write("members.jsonl.gz", gzip.compress(first, mtime=0) + gzip.compress(rest, mtime=0))
    array = json.dumps([{"text": d, "n": [1, {"x": "]"}]} for d in docs], ensure_ascii=False, indent=2).encode()
    write("docs.json", array)
    write("docs.json.gz", gzip.compress(array, mtime=0))
    write("lines.json.gz", gzip.compress(jsonl, mtime=0))
    nested = "\n".join(json.dumps({"meta": {"body": d}}, ensure_ascii=False) for d in docs) + "\n"
    write("nested.jsonl", nested.encode())
    table = pa.table({"id": list(range(len(docs))), "text": docs})
    for codec in ["snappy", "zstd", "gzip"]:
        buf = io.BytesIO()
        pq.write_table(table, buf, compression=codec, row_group_size=4)
        write(f"docs_{codec}.parquet", buf.getvalue())
    buf = io.BytesIO()
    pq.write_table(pa.table({"meta": [{"body": d, "lang": "en"} for d in docs]}), buf)
    write("nested.parquet", buf.getvalue())
    text = "<|endoftext|>".join(docs).encode()
    write("docs.txt.gz", gzip.compress(text, mtime=0))
    write("docs.txt.zst", zstd(text))
    bad = [lines[0], lines[1], '{"text": "unterminated', lines[2], '{"body": "no text field"}', lines[3]]
    write("bad.jsonl", ("\n".join(bad) + "\n").encode())
    for name in sorted(os.listdir(OUT)):
        print(f"{os.path.getsize(os.path.join(OUT, name)):>7}  {name}")


if __name__ == "__main__":
    main()
