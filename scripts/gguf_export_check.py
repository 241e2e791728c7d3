"""Reads what `deno task export` writes with llama.cpp's own Python package (gguf's GGUFReader) and
checks every key and tensor against what llama.cpp's converter would write, derived here without
the project's code:

- tensors from the source model: its Hugging Face tensors under gguf's TensorNameMap names for the
  architecture, with the converter's changes (llama's query and key rows permuted to interleaved
  pairs, Gemma's norm weights + 1, GPT-2's Conv1D weights transposed); stories260K's from the GGUF
  file it came from (its `output.weight`, equal to `token_embd.weight`, left out as a tied head);
- each tensor's type: vectors F32, matrices the chosen type, GPT-2's position_embd F32 when
  quantized, rows that are not whole blocks falling back as llama.cpp's quantizer does (Q4_K to
  Q5_0, Q6_K to Q8_0, then F16);
- each tensor's bytes: F32 equal, F16 equal to numpy's float16 of the f32 values, Q8_0, Q5_0 and
  Q4_0 equal to gguf's own quantizer (`gguf.quants.quantize`), K-quants (which gguf cannot write)
  dequantized by gguf within the type's error of the f32 values;
- the keys: those of the fixture's GGUF file (tests/fixtures/NAME/model.gguf, written in the
  converter's layout by scripts/family_fixtures.py) or of the source GGUF, value and type, plus
  what the export states beyond them (general.file_type, a vocabulary-less model's
  tokenizer.ggml.model "no_vocab" and <arch>.vocab_size, SentencePiece's pre-tokenizer and flags);
  for mistral_tiny, gpt2_tiny and models/brown-ref (a GPT-2 trained here), which have no such
  file, the keys of the converter's LlamaModel and GPT2Model for their config.json, and for
  brown-ref its byte tokenizer as 256 byte-level tokens without merges.

Run by hand (the test suite itself never needs Python), from the repository root:

    python3 -m venv /tmp/venvx && /tmp/venvx/bin/pip install gguf numpy
    /tmp/venvx/bin/python scripts/gguf_export_check.py
"""

import importlib.metadata
import json
import os
import struct
import subprocess
import sys
import tempfile

import gguf
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
STORIES = os.path.join(ROOT, "models", "stories260K", "model.gguf")
TYPES = ["f32", "f16", "q8_0", "q4_0", "q4_k", "q6_k"]
Q = gguf.GGMLQuantizationType
FILE_TYPES = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7, "q4_k": 14, "q6_k": 18}
FALLBACK = {Q.Q4_K: Q.Q5_0, Q.Q6_K: Q.Q8_0}
TOLERANCE = {Q.Q4_K: 0.1, Q.Q6_K: 0.03}  # norm-wise error of a dequantized K-quant matrix
ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "phi3": "phi3",
        "gemma3_text": "gemma3", "gpt2": "gpt2"}
GPT2_TRANSPOSED = (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", (name, t["dtype"])
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], np.float32).reshape(t["shape"])
    return out


def interleave(w, heads):
    """Hugging Face's rotate-half rows of each head as llama's interleaved pairs."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def expected_from_hf(folder):
    """The GGUF tensors llama.cpp's converter makes of the model folder, and its config.json."""
    name = os.path.basename(folder)
    cfg = json.load(open(os.path.join(folder, "config.json")))
    arch = ARCH[cfg["model_type"]]
    blocks = cfg.get("num_hidden_layers", cfg.get("n_layer"))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], blocks)
    out = {}
    for hf_name, w in read_safetensors(os.path.join(folder, "model.safetensors")).items():
        if arch == "llama" and hf_name.endswith("q_proj.weight"):
            w = interleave(w, cfg["num_attention_heads"])
        elif arch == "llama" and hf_name.endswith("k_proj.weight"):
            w = interleave(w, cfg["num_key_value_heads"])
        elif arch == "gemma3" and hf_name.endswith("norm.weight"):
            w = w + np.float32(1)
        elif arch == "gpt2" and hf_name.endswith(GPT2_TRANSPOSED):
            w = w.T.copy()
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        assert gguf_name is not None, (name, hf_name)
        out[gguf_name] = w
    return out, cfg, arch


def byte_level_chars():
    """GPT-2's printable character of each byte (its `bytes_to_unicode`)."""
    printable = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or b >= 174]
    chars, shifted = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + shifted)
            shifted += 1
    return [chars[b] for b in range(256)]


def converter_keys(cfg, arch):
    """The `<arch>.*` keys llama.cpp's LlamaModel or GPT2Model writes for a config.json."""
    if arch == "gpt2":
        return {"gpt2.block_count": cfg["n_layer"], "gpt2.context_length": cfg["n_ctx"],
                "gpt2.embedding_length": cfg["n_embd"], "gpt2.feed_forward_length": 4 * cfg["n_embd"],
                "gpt2.attention.head_count": cfg["n_head"],
                "gpt2.attention.layer_norm_epsilon": cfg["layer_norm_epsilon"]}
    return {"llama.block_count": cfg["num_hidden_layers"], "llama.context_length": cfg["max_position_embeddings"],
            "llama.embedding_length": cfg["hidden_size"], "llama.feed_forward_length": cfg["intermediate_size"],
            "llama.attention.head_count": cfg["num_attention_heads"],
            "llama.attention.head_count_kv": cfg["num_key_value_heads"],
            "llama.attention.layer_norm_rms_epsilon": cfg["rms_norm_eps"], "llama.vocab_size": cfg["vocab_size"],
            "llama.rope.dimension_count": cfg["hidden_size"] // cfg["num_attention_heads"],
            "llama.rope.freq_base": cfg["rope_theta"]}


def reader_keys(reader):
    return {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}


def same_value(a, b):
    if isinstance(b, float) or isinstance(a, float):
        return np.float32(a) == np.float32(b)
    if isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


def stored_type(name, shape, type_):
    """The ggml type the export must choose (see the docstring)."""
    if len(shape) < 2 or type_ == "f32":
        return Q.F32
    if type_ == "f16":
        return Q.F16
    if name == "position_embd.weight":
        return Q.F32
    qtype = Q[type_.upper()]
    while qtype is not None:
        if shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0] == 0:
            return qtype
        qtype = FALLBACK.get(qtype)
    return Q.F16


def check_tensor(t, want, type_):
    where = f"{t.name} ({t.tensor_type.name})"
    assert list(t.shape) == list(reversed(want.shape)), (where, t.shape, want.shape)
    qtype = stored_type(t.name, want.shape, type_)
    assert t.tensor_type == qtype, (where, qtype.name)
    raw = np.asarray(t.data)
    if qtype == Q.F32:
        assert np.array_equal(raw.reshape(want.shape), want), where
    elif qtype == Q.F16:
        assert np.array_equal(raw.reshape(want.shape), want.astype(np.float16)), where
    elif qtype in (Q.Q8_0, Q.Q5_0, Q.Q4_0):
        expected = gguf.quants.quantize(want, qtype)
        assert raw.tobytes() == expected.tobytes(), (where, "bytes differ from gguf's quantizer")
    else:
        got = gguf.quants.dequantize(raw, qtype).reshape(want.shape)
        err = np.abs(got - want).max() / np.abs(want).max()
        assert err < TOLERANCE[qtype], (where, err)
    return qtype


def check_keys(got, want, added):
    """`got` holds every key of `want` (same value) and, beyond them, exactly `added`."""
    for key, value in want.items():
        assert key in got, ("missing key", key)
        assert same_value(got[key], value), (key, got[key], value)
    extra = {k: v for k, v in got.items() if k not in want}
    assert set(extra) == set(added), ("keys beyond the reference", sorted(set(extra) ^ set(added)))
    for key, value in added.items():
        if value is not None:
            assert same_value(extra[key], value), (key, extra[key], value)


def export(model, out, type_):
    r = subprocess.run(["deno", "run", "-A", "cli.ts", "export", "--model", model, "--out", out, "--type", type_],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()[0]


def main():
    cases = [(n, os.path.join(FIXTURES, n)) for n in
             ["llama3_tiny", "qwen2_tiny", "qwen3_tiny", "mistral_tiny", "phi3_tiny", "gemma3_text_tiny", "gpt2_tiny"]]
    cases += [("brown-ref", os.path.join(ROOT, "models", "brown-ref")), ("stories260K", STORIES)]
    files = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in cases:
            for type_ in TYPES:
                out = os.path.join(tmp, f"{name}.{type_}.gguf")
                line = export(model, out, type_)
                reader = gguf.GGUFReader(out)
                got_keys = reader_keys(reader)
                if name == "stories260K":
                    source = gguf.GGUFReader(STORIES)
                    want = {t.name: np.asarray(t.data).reshape(list(reversed(t.shape))) for t in source.tensors}
                    assert np.array_equal(want.pop("output.weight"), want["token_embd.weight"])
                    ref = reader_keys(source)
                    # The source states "no separator" and "no padding" as 0xFFFFFFFF ids; the export leaves them out.
                    for key in ("tokenizer.ggml.seperator_token_id", "tokenizer.ggml.padding_token_id"):
                        assert ref.pop(key) == 0xFFFFFFFF
                    ref["general.name"] = f"{name}.{type_}"
                    # The source leaves RoPE's base at llama.cpp's default and the vocabulary's size to its tokens.
                    added = {"llama.rope.freq_base": 10000.0, "llama.vocab_size": 512,
                             "general.file_type": FILE_TYPES[type_], "general.quantization_version": 2,
                             "tokenizer.ggml.pre": "default", "tokenizer.ggml.add_bos_token": True,
                             "tokenizer.ggml.add_eos_token": False, "tokenizer.ggml.add_space_prefix": True,
                             "tokenizer.ggml.remove_extra_whitespaces": None}
                else:
                    want, cfg, arch = expected_from_hf(model)
                    reference = os.path.join(model, "model.gguf")
                    if os.path.exists(reference):
                        source = gguf.GGUFReader(reference)
                        ref = reader_keys(source)
                        # llama3's rope_freqs is computed by the converter, not stored in the HF folder.
                        for t in source.tensors:
                            if t.name == "rope_freqs.weight":
                                want[t.name] = np.asarray(t.data)
                    else:
                        ref = {"general.architecture": arch, "general.quantization_version": 2,
                               **converter_keys(cfg, arch)}
                    ref["general.name"] = f"{name}.{type_}"
                    ref["general.file_type"] = FILE_TYPES[type_]
                    if name == "brown-ref":
                        # The built-in byte tokenizer: GPT-2's byte characters as tokens, no merges.
                        added = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "gpt-2",
                                 "tokenizer.ggml.tokens": byte_level_chars(), "tokenizer.ggml.token_type": [1] * 256,
                                 "tokenizer.ggml.merges": []}
                    else:
                        added = {"tokenizer.ggml.model": "no_vocab"}
                        if arch != "llama":
                            added[f"{arch}.vocab_size"] = cfg.get("vocab_size")
                check_keys(got_keys, ref, added)
                assert sorted(t.name for t in reader.tensors) == sorted(want), sorted(
                    set(t.name for t in reader.tensors) ^ set(want))
                types = {}
                for t in reader.tensors:
                    qtype = check_tensor(t, want[t.name], type_)
                    types[qtype.name] = types.get(qtype.name, 0) + 1
                files += 1
                print(f"{name} {type_}: {len(reader.tensors)} tensors {types}, {len(got_keys)} keys: ok")
    print(f"all {files} files read by gguf {importlib.metadata.version('gguf')} as written")


if __name__ == "__main__":
    sys.exit(main())
