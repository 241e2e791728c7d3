"""The ids `transformers`' AutoTokenizer gives with the tokenizer files of model folders written
here, so that tests/core/hf_tokenizer_test.ts checks them without Python:

    python3 -m venv /tmp/venvlm && /tmp/venvlm/bin/pip install transformers tokenizers sentencepiece
    /tmp/venvlm/bin/python scripts/hf_tokenizer_fixtures.py

Writes the folders of tests/core/_hf_folders.ts (stories260K's SentencePiece vocabulary, SmolLM2's
and GPT-2's byte-level BPE) with `deno run`, loads each with AutoTokenizer.from_pretrained and
encodes the cases with its defaults (special tokens added, as lm-evaluation-harness's HFLM encodes
a context). Writes tests/fixtures/hf_tokenizers.json: the cases, the transformers version, and per
folder the tokenizer class it loaded, the SHA-256 of each tokenizer file (the test writes the
folders again and requires the same files) and the ids; formatted by `deno fmt`.
"""
import hashlib
import json
import os
import subprocess
import tempfile

import transformers
from transformers import AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "hf_tokenizers.json")
FILES = ["tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"]


def cases():
    """tok512's edge cases, a paragraph, and prompts shaped as the harness's tasks shape them."""
    with open(os.path.join(ROOT, "tests", "fixtures", "tok512_cases.json")) as f:
        edge = json.load(f)["cases"]
    with open(os.path.join(ROOT, "corpora", "tinystories", "valid_head.txt")) as f:
        paragraph = f.read().strip().split("\n\n")[0]
    prompts = [
        "Once upon a time",
        "Question: How do I open a jar?\nAnswer: Twist the lid until it comes off.",
        "Question: How do I cut paper?\nAnswer: Use scissors.\n\nQuestion: How do I open a jar?\nAnswer:",
        "The city councilmen refused the demonstrators a permit because the city councilmen  feared violence.",
        "<|endoftext|>Once upon a time",
        "<s> Once upon a time",
    ]
    return edge + [paragraph] + prompts


def main():
    texts = cases()
    folders = {}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["deno", "run", "-A", "tests/core/_hf_folders.ts", tmp], cwd=ROOT, check=True)
        for name in sorted(os.listdir(tmp)):
            folder = os.path.join(tmp, name)
            tokenizer = AutoTokenizer.from_pretrained(folder)
            sha = {}
            for file in FILES:
                path = os.path.join(folder, file)
                if os.path.exists(path):
                    with open(path, "rb") as f:
                        sha[file] = hashlib.sha256(f.read()).hexdigest()
            folders[name] = {
                "class": type(tokenizer).__name__,
                "sha256": sha,
                "ids": [tokenizer.encode(t) for t in texts],
            }
    with open(OUT, "w") as f:
        json.dump({"transformers": transformers.__version__, "cases": texts, "folders": folders}, f)
        f.write("\n")
    subprocess.run(["deno", "fmt", "--quiet", OUT], cwd=ROOT, check=True)
    print(f"wrote {OUT}: {len(texts)} cases for {', '.join(folders)}")


if __name__ == "__main__":
    main()
