"""The Rust `tokenizers` library's `encode_batch` on the texts of a JSON Lines file, the baseline
of bench/data/prepare_workers.ts (which runs it in the same run, on the same text):

    RAYON_NUM_THREADS=1 /tmp/venvdata/bin/python bench/data/hf_encode_batch.py FILE.jsonl TOKENIZER.json

Prints one JSON line: seconds of encode_batch alone (the texts already in memory, as a list of
str), tokens, and the threads rayon used. Special tokens are not added (prepare adds one per
document itself).
"""
import json
import os
import sys
import time

from tokenizers import Tokenizer


def main():
    path, tokenizer_path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    tokenizer = Tokenizer.from_file(tokenizer_path)
    started = time.perf_counter()
    encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
    seconds = time.perf_counter() - started
    tokens = sum(len(e.ids) for e in encodings)
    print(json.dumps({"seconds": seconds, "tokens": tokens, "threads": os.environ.get("RAYON_NUM_THREADS", "all")}))


if __name__ == "__main__":
    main()
