"""Continue training a model folder of this project (any family it writes: GPT-2, Llama, Qwen2,
Qwen3, Mistral, Phi-3, Gemma 3) on many GPUs or nodes with PyTorch FSDP, reading the same token
shards in the same order as `deno task train`, and write the result back as a model folder that
`deno task eval` reads.

    python3 scripts/fsdp_train.py --model DIR --data DATA --out DIR [--steps S] ...        (1 process)
    python3 -m torch.distributed.run --nproc_per_node 8 scripts/fsdp_train.py --model ... (8 GPUs)

The Deno trainer's recipe, ported: windows `[w·T, w·T + T + 1)` of the train split, the seeded
subset and per-epoch shuffle of data/sampler.ts (same seed → same windows), AdamW (0.9, 0.95),
eps 1e-8, weight decay 0.1 on 2-D tensors, global-norm clipping at 1.0, warm-up then cosine to 10%
of the peak (core/schedule.ts), `metrics.jsonl` lines as core/trainer.ts writes them, and the
validation loss of core/evaluate.ts. One optimizer step takes the next B·P·A windows of that order
(B per micro-step per process, P processes, A accumulation micro-steps): the step is the same for
any P and A with the same product, up to float summation order.

The model is Hugging Face transformers' own class of the folder (AutoModelForCausalLM) when
transformers is installed, as it is where people train at that scale; without it, the script's own
GPT-2 and Llama (gpt2_torch.py, llama_torch.py), and for another family one line saying what to
install (`--modeling` picks one). Either way the recipe has no dropout, as `deno task train`.

FSDP shards the model on CUDA (NCCL). On CPU (gloo) FSDP is tried and, where this PyTorch cannot
run it, the script says so and uses DistributedDataParallel, which replicates the model instead.
User errors (flags, folders, data of another tokenizer) are one line on stderr and exit code 2.
"""

import argparse
import contextlib
import importlib.util
import json
import math
import os
import re
import shutil
import struct
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt2_torch  # noqa: E402
import llama_torch  # noqa: E402


class UserError(Exception):
    """A problem the user can fix: printed as one line, exit code 2."""


# ---------------------------------------------------------------------------------------------
# safetensors, by hand: 8-byte little-endian header length, JSON header, raw little-endian bytes.

DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


def read_safetensors(path, wanted=None):
    """{name: f32 tensor} of the F32/F16/BF16 tensors in `path` (only `wanted` names when given)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise UserError(f"{path}: {size} bytes, too short for a safetensors file")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                raise UserError(f"{path}: header of {n} bytes overruns the {size}-byte file")
            header = json.loads(f.read(n))
            data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n) if size > 8 + n else np.zeros(0, np.uint8)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path}: header is not valid JSON")
    if not isinstance(header, dict):
        raise UserError(f"{path}: header is not a JSON object")
    header.pop("__metadata__", None)
    out = {}
    for name, e in header.items():
        if wanted is not None and name not in wanted:
            continue
        try:
            dtype, shape, (begin, end) = e["dtype"], [int(s) for s in e["shape"]], e["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path}: tensor {name} has a malformed header entry")
        numel = math.prod(shape)
        if (
            dtype not in DTYPE_BYTES
            or not (0 <= begin <= end <= len(data))
            or end - begin != numel * DTYPE_BYTES[dtype]
        ):
            raise UserError(f"{path}: tensor {name} ({dtype} {shape}) does not fit its offsets [{begin}, {end})")
        raw = np.asarray(data[begin:end])
        if dtype == "F32":
            values = raw.view("<f4")
        elif dtype == "F16":
            values = raw.view("<f2").astype(np.float32)
        elif dtype == "BF16":
            values = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise UserError(f"{path}: tensor {name} is {dtype}; only F32, F16 and BF16 weights are read")
        out[name] = torch.from_numpy(values.astype(np.float32).reshape(shape))
    return out


def write_safetensors(path, tensors, metadata):
    """Writes F32 `tensors` ({name: tensor}) to `path` (a temporary name; the caller renames it)."""
    header, offset = {"__metadata__": metadata}, 0
    for name, t in tensors.items():
        nbytes = t.numel() * 4
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for t in tensors.values():
            f.write(np.ascontiguousarray(t.detach().cpu().float().numpy(), dtype="<f4").tobytes())
        f.flush()
        os.fsync(f.fileno())


# ---------------------------------------------------------------------------------------------
# Model folders: config.json + model.safetensors (or an index and its shards), Hugging Face names.

FAMILIES = ("gpt2", "llama")  # the families of the script's own models, used without transformers
# Files a model folder may carry beside the weights; copied unchanged into every checkpoint.
COMPANION_FILES = (
    "tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
    "vocab.json", "merges.txt", "generation_config.json", "README.md",
)  # fmt: skip
GPT2_BUFFERS = (".attn.bias", ".attn.masked_bias")


def read_json(path, what):
    try:
        with open(path) as f:
            value = json.load(f)
    except FileNotFoundError:
        raise UserError(f"{path}: no {what}")
    except OSError as e:
        raise UserError(f"{path}: cannot read the {what} ({e.strerror})")
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: the {what} is not valid JSON ({e})")
    if not isinstance(value, dict):
        raise UserError(f"{path}: the {what} is not a JSON object")
    return value


def read_weights(folder):
    """Every tensor of the folder: model.safetensors, or model.safetensors.index.json's shards."""
    single = os.path.join(folder, "model.safetensors")
    if os.path.exists(single):
        return read_safetensors(single)
    index_path = os.path.join(folder, "model.safetensors.index.json")
    if not os.path.exists(index_path):
        raise UserError(f"{folder}: no model.safetensors or model.safetensors.index.json")
    weight_map = read_json(index_path, "weights index").get("weight_map")
    if not isinstance(weight_map, dict):
        raise UserError(f"{index_path}: no weight_map")
    tensors = {}
    for shard in sorted(set(weight_map.values())):
        names = {n for n, s in weight_map.items() if s == shard}
        got = read_safetensors(os.path.join(folder, shard), wanted=names)
        missing = names - got.keys()
        if missing:
            raise UserError(f"{os.path.join(folder, shard)}: lacks {min(missing)}, which the index places there")
        tensors.update(got)
    return tensors


def config_int(cfg, path, key, fallback=None):
    v = cfg.get(key, fallback)
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise UserError(f"{path}: {key} must be a positive integer, got {json.dumps(v)}")
    return v


def config_float(cfg, path, key, fallback):
    v = cfg.get(key, fallback)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
        raise UserError(f"{path}: {key} must be a positive number, got {json.dumps(v)}")
    return float(v)


def gpt2_model(cfg, path):
    """gpt2_torch.GPT of config.json `cfg`, uninitialised; its block class."""
    if cfg.get("activation_function", "gelu_new") != "gelu_new":
        raise UserError(f"{path}: activation_function {cfg['activation_function']} is not gelu_new (tanh GELU)")
    c = gpt2_torch.config(
        config_int(cfg, path, "n_layer"),
        config_int(cfg, path, "n_head"),
        config_int(cfg, path, "n_embd"),
        config_int(cfg, path, "vocab_size"),
        config_int(cfg, path, "n_positions", cfg.get("n_ctx")),
        config_float(cfg, path, "layer_norm_epsilon", 1e-5),
    )
    if c.n_embd % c.n_head != 0:
        raise UserError(f"{path}: n_embd {c.n_embd} is not divisible by n_head {c.n_head}")
    if cfg.get("n_inner") not in (None, 4 * c.n_embd):
        raise UserError(f"{path}: n_inner {cfg['n_inner']} is not 4·n_embd = {4 * c.n_embd}")
    if cfg.get("tie_word_embeddings", True) is not True:
        raise UserError(f"{path}: only a GPT-2 with its LM head tied to wte is supported")
    return gpt2_torch.GPT(c), gpt2_torch.Block, c.n_positions


def llama_model(cfg, path):
    """llama_torch.Llama of config.json `cfg`, uninitialised; its block class."""
    for key, ok in (("hidden_act", "silu"), ("attention_bias", False), ("mlp_bias", False)):
        if cfg.get(key, ok) != ok:
            raise UserError(f"{path}: {key} {json.dumps(cfg[key])} is not supported (only {json.dumps(ok)})")
    # transformers 5 keeps θ in rope_parameters; 4.x at the top level, with rope_scaling beside it.
    rope = {}
    for key in ("rope_scaling", "rope_parameters"):
        if not isinstance(cfg.get(key) or {}, dict):
            raise UserError(f"{path}: {key} must be an object or null, got {json.dumps(cfg[key])}")
        rope.update(cfg.get(key) or {})
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise UserError(f"{path}: rope type {json.dumps(rope_type)} is not supported (only plain RoPE)")
    theta = {"rope_theta": rope.get("rope_theta", cfg.get("rope_theta", 10000.0))}
    H = config_int(cfg, path, "num_attention_heads")
    KV = config_int(cfg, path, "num_key_value_heads", H)
    C = config_int(cfg, path, "hidden_size")
    if H % KV != 0:
        raise UserError(f"{path}: num_key_value_heads {KV} does not divide num_attention_heads {H}")
    head_dim = cfg.get("head_dim") or (C // H)
    if cfg.get("head_dim") is None and C % H != 0:
        raise UserError(f"{path}: hidden_size {C} is not divisible by num_attention_heads {H}")
    if head_dim % 2 != 0:
        raise UserError(f"{path}: head size {head_dim} is odd; rotary embeddings pair its halves")
    c = llama_torch.config(
        hidden_size=C,
        intermediate_size=config_int(cfg, path, "intermediate_size"),
        num_hidden_layers=config_int(cfg, path, "num_hidden_layers"),
        num_attention_heads=H,
        num_key_value_heads=KV,
        vocab_size=config_int(cfg, path, "vocab_size"),
        max_position_embeddings=config_int(cfg, path, "max_position_embeddings", 2048),
        rms_norm_eps=config_float(cfg, path, "rms_norm_eps", 1e-6),
        rope_theta=config_float(theta, path, "rope_theta", 10000.0),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        head_dim=head_dim,
    )
    return llama_torch.Llama(c), llama_torch.Block, c.max_position_embeddings


class Loaded:
    """A model folder loaded for training: `model(tokens, targets)` gives (logits, mean loss or None);
    `block` the class(es) FSDP shards one by one; `prefix` what the model's parameter names add to the
    folder's tensor names."""

    def __init__(self, family, cfg, model, block, max_t, tied, how, prefix=""):
        self.family, self.cfg, self.model, self.block = family, cfg, model, block
        self.max_t, self.tied, self.how, self.prefix = max_t, tied, how, prefix


class TransformersLM(torch.nn.Module):
    """A transformers causal LM behind the interface of the script's own models: next-token targets
    given (-1 ignored), as the data order already shifts them, rather than transformers' labels."""

    def __init__(self, hf):
        super().__init__()
        self.hf = hf
        self.vocab_size = hf.config.vocab_size

    def forward(self, tokens, targets=None):
        logits = self.hf(input_ids=tokens, use_cache=False).logits
        if targets is None:
            return logits, None
        flat = logits.float().reshape(-1, self.vocab_size)
        return logits, F.cross_entropy(flat, targets.reshape(-1), ignore_index=-1)


def transformers_model(folder, family, cfg):
    """The folder as transformers' own model class (AutoModelForCausalLM), in f32, without dropout."""
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    version = transformers.__version__
    try:
        config = AutoConfig.from_pretrained(folder)
        for key, value in config.to_dict().items():
            # The recipe has no dropout (attention_dropout, resid_pdrop, ...), as deno task train.
            if (key.endswith("dropout") or key.endswith("pdrop")) and isinstance(value, float):
                setattr(config, key, 0.0)
        hf, info = AutoModelForCausalLM.from_pretrained(folder, config=config, output_loading_info=True)
    except (OSError, ValueError, KeyError, TypeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise UserError(f"{folder}: transformers {version} cannot load it as a causal language model ({first})")
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        if info.get(kind):
            names = sorted(str(k) for k in info[kind])
            raise UserError(f"{folder}: transformers {version} reports {kind.replace('_', ' ')}: {', '.join(names[:3])}")
    hf = hf.float()
    text = hf.config.get_text_config() if hasattr(hf.config, "get_text_config") else hf.config
    max_t = getattr(text, "max_position_embeddings", None) or getattr(text, "n_positions", None)
    if not max_t:
        raise UserError(f"{folder}: transformers' configuration states no longest context")
    split = set(getattr(hf, "_no_split_modules", None) or [])
    block = tuple({type(m) for m in hf.modules() if type(m).__name__ in split})
    tied = bool(getattr(text, "tie_word_embeddings", False))
    how = f"transformers {version} {type(hf).__name__}"
    return Loaded(family, cfg, TransformersLM(hf), block, max_t, tied, how, prefix="hf.")


def transformers_installed():
    return importlib.util.find_spec("transformers") is not None


def load_model(folder, modeling="auto"):
    """The folder's model (`Loaded`) by transformers when installed (or asked), else the script's own."""
    if not os.path.isdir(folder):
        raise UserError(f"{folder}: no such model folder")
    path = os.path.join(folder, "config.json")
    cfg = read_json(path, "model configuration (config.json)")
    family = cfg.get("model_type")
    if modeling == "transformers" and not transformers_installed():
        raise UserError("--modeling transformers: transformers is not installed (pip install transformers)")
    if modeling == "transformers" or (modeling == "auto" and transformers_installed()):
        return transformers_model(folder, family, cfg)
    if family not in FAMILIES:
        if modeling == "builtin":
            raise UserError(
                f"--modeling builtin: {folder}'s model_type {json.dumps(family)} is not one of this script's "
                f"own ({' and '.join(FAMILIES)})"
            )
        raise UserError(
            f"{folder}: model_type {json.dumps(family)} needs transformers (pip install transformers); "
            f"without it this script trains {' and '.join(FAMILIES)}"
        )
    model, block, max_t = (gpt2_model if family == "gpt2" else llama_model)(cfg, path)
    stored = read_weights(folder)
    tensors = {}
    for name, t in stored.items():
        if family == "gpt2":
            name = name.removeprefix("transformer.")
            if name.endswith(GPT2_BUFFERS):
                continue
        tensors[name] = t
    expected = model.state_dict()
    if family == "gpt2" and "lm_head.weight" in tensors:
        head = tensors.pop("lm_head.weight")
        if "wte.weight" in tensors and not torch.equal(head, tensors["wte.weight"]):
            raise UserError(f"{folder}: lm_head.weight differs from wte.weight; only a tied LM head is supported")
    if family == "llama" and model.cfg.tie_word_embeddings:
        # A tied Llama stores the shared matrix under either name.
        shared = tensors.get("model.embed_tokens.weight", tensors.get("lm_head.weight"))
        if shared is not None:
            tensors["model.embed_tokens.weight"] = tensors["lm_head.weight"] = shared
    for name, t in tensors.items():
        if name not in expected:
            raise UserError(f"{folder}: tensor {name} is not part of a {family} model of this configuration")
        if tuple(t.shape) != tuple(expected[name].shape):
            raise UserError(
                f"{folder}: tensor {name} has shape {list(t.shape)}, the configuration needs {list(expected[name].shape)}"
            )
    missing = [n for n in expected if n not in tensors]
    if missing:
        raise UserError(f"{folder}: tensor {missing[0]} is missing")
    model.load_state_dict(tensors)
    tied = family == "gpt2" or model.cfg.tie_word_embeddings
    how = f"this script's {'gpt2_torch' if family == 'gpt2' else 'llama_torch'}"
    return Loaded(family, cfg, model, block, max_t, tied, how)


def save_model(out, source, cfg, state, tied):
    """Writes `out/config.json` and `out/model.safetensors` (F32) under temporary names, then renames
    them into place (weights first), and copies the source folder's tokenizer files beside them."""
    os.makedirs(out, exist_ok=True)
    tensors = {}
    for name, t in state.items():
        if tied and name == "lm_head.weight":
            continue  # tied: Hugging Face and this project read the embedding as the head
        tensors[name] = t
    cfg = dict(cfg)
    for key in ("torch_dtype", "dtype"):  # transformers 4.x, 5
        if cfg.get(key) is not None:
            cfg[key] = "float32"
    weights, config = os.path.join(out, "model.safetensors"), os.path.join(out, "config.json")
    write_safetensors(weights + ".tmp", tensors, {"format": "pt"})
    with open(config + ".tmp", "w") as f:
        f.write(json.dumps(cfg, indent=2) + "\n")
    os.replace(weights + ".tmp", weights)
    os.replace(config + ".tmp", config)
    stale = os.path.join(out, "model.safetensors.index.json")
    if os.path.exists(stale):
        os.remove(stale)  # it would describe other weights than model.safetensors
    if os.path.realpath(source) != os.path.realpath(out):
        for name in COMPANION_FILES:
            if os.path.isfile(os.path.join(source, name)):
                shutil.copyfile(os.path.join(source, name), os.path.join(out, name))


# ---------------------------------------------------------------------------------------------
# Token data (data/shard.ts, data/dataset.ts): llm.c shards, a 256-int32 header then the tokens.

HEADER_BYTES = 1024
SHARD_FORMATS = {20240520: (1, "<u2"), 20240801: (7, "<u4")}  # magic: (version, token dtype)
SHARD_NAME = re.compile(r"(?:^|_)(train|val)(?:_\d+)?\.bin$")


def open_shard(path):
    """The tokens of one shard, memory-mapped, after checking its header against its size."""
    try:
        size = os.path.getsize(path)
        header = np.fromfile(path, dtype="<i4", count=256)
    except FileNotFoundError:
        raise UserError(f"{path}: no such shard file")
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})")
    if size < HEADER_BYTES or len(header) < 256:
        raise UserError(f"{path}: {size} bytes, shorter than the {HEADER_BYTES}-byte shard header")
    magic, version, tokens = int(header[0]), int(header[1]), int(header[2])
    if magic not in SHARD_FORMATS:
        raise UserError(f"{path}: not a token shard (magic {magic}; expected 20240520 or 20240801)")
    want_version, dtype = SHARD_FORMATS[magic]
    if version != want_version:
        raise UserError(f"{path}: unknown shard version {version} for magic {magic} (expected {want_version})")
    expected = HEADER_BYTES + tokens * np.dtype(dtype).itemsize
    if tokens < 0 or size != expected:
        raise UserError(f"{path}: header counts {tokens} tokens ({expected} bytes) but the file has {size} bytes")
    if tokens == 0:
        return np.zeros(0, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=HEADER_BYTES, shape=(tokens,))


class TokenStream:
    """Shards read one after another as one stream of `length` tokens."""

    def __init__(self, shards):
        self.shards = shards
        self.starts = np.cumsum([0] + [len(s) for s in shards])
        self.length = int(self.starts[-1])

    def read(self, start, count):
        """Tokens [start, start + count) as int64."""
        out = np.empty(count, np.int64)
        done = 0
        i = int(np.searchsorted(self.starts, start, side="right")) - 1
        while done < count:
            local = start + done - int(self.starts[i])
            n = min(count - done, len(self.shards[i]) - local)
            if n > 0:
                out[done : done + n] = self.shards[i][local : local + n]
                done += n
            i += 1
        return out

    def max_token(self):
        return max((int(s.max()) for s in self.shards if len(s) > 0), default=-1)


def open_dataset(path):
    """(meta.json dict or None, {split: TokenStream}) of a prepared folder, a folder of bare llm.c
    shards (`*train*.bin`, `*val*.bin`) or one shard file, as data/dataset.ts opens them."""
    if not os.path.exists(path):
        raise UserError(f"{path}: no such dataset folder or shard file")
    meta, files = None, {}
    if os.path.isfile(path):
        m = SHARD_NAME.search(os.path.basename(path))
        files[m.group(1) if m else "train"] = [(path, None)]
    elif os.path.exists(os.path.join(path, "meta.json")):
        meta = read_json(os.path.join(path, "meta.json"), "dataset description (meta.json)")
        splits = meta.get("splits")
        ok = isinstance(meta.get("vocabSize"), int) and isinstance(splits, dict)
        ok = ok and all(
            isinstance(splits.get(s), dict) and isinstance(splits[s].get("shards"), list) for s in ("train", "val")
        )
        if not ok:
            raise UserError(f"{os.path.join(path, 'meta.json')}: missing vocabSize or splits.train/val.shards")
        for split in ("train", "val"):
            files[split] = [(os.path.join(path, s["file"]), s.get("tokens")) for s in splits[split]["shards"]]
    else:
        names = sorted(n for n in os.listdir(path) if SHARD_NAME.search(n) and os.path.isfile(os.path.join(path, n)))
        if not names:
            raise UserError(f"{path}: no meta.json and no shard files (*train*.bin, *val*.bin)")
        for name in names:
            files.setdefault(SHARD_NAME.search(name).group(1), []).append((os.path.join(path, name), None))
    streams = {}
    for split, listed in files.items():
        shards = []
        for file, tokens in listed:
            shard = open_shard(file)
            if tokens is not None and tokens != len(shard):
                raise UserError(f"{file}: holds {len(shard)} tokens but meta.json says {tokens}")
            shards.append(shard)
        streams[split] = TokenStream(shards)
    return meta, streams


def tokenizer_fields(record):
    """The tokenizer facts a config.json or meta.json records, under comparable keys: `tokenizer`
    as a name or as an object of fields, and any `tokenizer_*` / `tokenizerX` field beside it."""

    def norm(key):
        return key.lower().replace("_", "").replace("-", "")

    out = {}
    for key, value in record.items():
        k = norm(key)
        if k == "tokenizer":
            if isinstance(value, str):
                out["tokenizername"] = value
            elif isinstance(value, dict):
                for sub, v in value.items():
                    if isinstance(v, (str, int, float)):
                        out["tokenizer" + norm(sub)] = v
        elif k.startswith("tokenizer") and isinstance(value, (str, int, float)):
            out[k] = value
    return out


def check_data(cfg, vocab_size, meta, streams, data_path):
    """Refuses shards made by another tokenizer than the model's, or holding ids past its vocabulary."""
    if meta is not None:
        ours, theirs = tokenizer_fields(cfg), tokenizer_fields(meta)
        for key in sorted(ours.keys() & theirs.keys()):
            if ours[key] != theirs[key]:
                what = "tokenizer" if key == "tokenizername" else key
                raise UserError(
                    f"{data_path}: shards of another tokenizer: meta.json records {what} {json.dumps(theirs[key])}, "
                    f"the model's config.json {json.dumps(ours[key])}"
                )
        if meta["vocabSize"] > vocab_size:
            raise UserError(
                f"{data_path}: tokenizer {meta.get('tokenizer')} has {meta['vocabSize']} tokens, "
                f"more than the model's vocabulary of {vocab_size}"
            )
    for split, stream in streams.items():
        top = stream.max_token()
        if top >= vocab_size:
            raise UserError(
                f"{data_path}: {split} split holds token {top}, not below the model's vocabulary {vocab_size}"
            )


# ---------------------------------------------------------------------------------------------
# The window order of data/sampler.ts, data/_rng.ts and data/random.ts, bit for bit (JavaScript's 32-bit
# integer arithmetic done with masks).

M32 = 0xFFFFFFFF


def imul(a, b):
    return (a * b) & M32


def mix_seed(seed, stream):
    """A 32-bit seed from `seed` and a stream number (murmur3 finaliser)."""
    h = imul(seed & M32, 0x9E3779B1) ^ (stream & M32)
    h = imul(h ^ (h >> 16), 0x85EBCA6B)
    h = imul(h ^ (h >> 13), 0xC2B2AE35)
    return (h ^ (h >> 16)) & M32


def random_ints(seed):
    """Uniform integers in [0, n) from a 32-bit seed (mulberry32, two draws for 53 bits)."""
    s = seed & M32

    def draw():
        nonlocal s
        s = (s + 0x6D2B79F5) & M32
        t = imul(s ^ (s >> 15), s | 1)
        t = t ^ ((t + imul(t ^ (t >> 7), t | 61)) & M32)
        return (t ^ (t >> 14)) & M32

    def below(n):
        hi = draw() >> 5
        lo = draw() >> 6
        return math.floor((hi * 67108864 + lo) / 2**53 * n)

    return below


def shuffle(items, random_int):
    """Fisher-Yates in place."""
    for i in range(len(items) - 1, 0, -1):
        j = random_int(i + 1)
        items[i], items[j] = items[j], items[i]


def js_round(x):
    """JavaScript's Math.round for x ≥ 0: halves go up."""
    r = math.floor(x)
    return r + 1 if x - r >= 0.5 else r


def choose_sorted(n, k, seed):
    """`k` distinct integers of [0, n) chosen with `seed`, ascending."""
    pool = list(range(n))
    random_int = random_ints(seed)
    for i in range(k):
        j = i + random_int(n - i)
        pool[i], pool[j] = pool[j], pool[i]
    return sorted(pool[:k])


class WindowOrder:
    """The windows `deno task train` visits, as BatchSampler(shuffle: true, seed, subset: {fraction,
    seed} when fraction < 1) yields them: position p of the run is window `window(p)`, epoch p // n."""

    def __init__(self, length, T, seed, fraction=1.0):
        self.T, self.seed, self.fraction = T, seed, fraction
        windows = max(0, (length - 1) // T)
        if windows < 1:
            raise UserError(f"the train split's {length} tokens hold no window of T + 1 = {T + 1} tokens")
        self.selected = None
        if fraction < 1:
            k = js_round(fraction * windows)
            if k < 1:
                raise UserError(f"--subset {fraction} of {windows} windows selects none")
            self.selected = choose_sorted(windows, k, mix_seed(seed, 0xFFFFFFFF))
        self.per_epoch = len(self.selected) if self.selected is not None else windows
        self._order, self._order_epoch = None, -1

    def window(self, position):
        """(window index in the full grid, epoch) at 0-based `position`."""
        epoch, k = divmod(position, self.per_epoch)
        if self._order_epoch != epoch:
            self._order = list(range(self.per_epoch))
            shuffle(self._order, random_ints(mix_seed(self.seed, epoch)))
            self._order_epoch = epoch
        k = self._order[k]
        return (self.selected[k] if self.selected is not None else k), epoch

    def state(self, position):
        """data/sampler.ts's SamplerState at `position`, for state.json."""
        subset = {"firstTokens": None, "fraction": self.fraction, "seed": self.seed} if self.fraction < 1 else None
        return {
            "epoch": position // self.per_epoch,
            "offset": position % self.per_epoch,
            "windowsPerEpoch": self.per_epoch,
            "T": self.T,
            "shuffle": True,
            "seed": self.seed,
            "subset": subset,
        }


def learning_rate(step, lr, warmup, steps, min_fraction=0.1):
    """core/schedule.ts: linear warm-up from lr/warmup, then cosine to lr·min_fraction at the last step."""
    if step < warmup:
        return lr * (step + 1) / warmup
    floor = lr * min_fraction
    ratio = min(1.0, (step - warmup) / max(1, steps - 1 - warmup))
    return floor + 0.5 * (1 + math.cos(math.pi * ratio)) * (lr - floor)


# ---------------------------------------------------------------------------------------------
# Processes: torch.distributed when launched by torch.distributed.run, else one plain process.


class Dist:
    def __init__(self, device_flag):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = device_flag == "cuda" or (device_flag == "auto" and torch.cuda.is_available())
        if use_cuda and not torch.cuda.is_available():
            raise UserError("--device cuda: this PyTorch sees no CUDA device")
        self.device = torch.device("cuda", self.local_rank) if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(self.device)
        self.backend = None
        if "RANK" in os.environ:
            self.backend = "nccl" if use_cuda else "gloo"
            dist.init_process_group(self.backend)

    def sum(self, values):
        """Σ over processes of a float64 vector."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.backend:
            dist.all_reduce(t)
        return t.tolist()

    def close(self):
        if self.backend:
            dist.barrier()
            dist.destroy_process_group()


def fully_shard_api():
    """PyTorch's FSDP2 `fully_shard` (torch ≥ 2.4). FSDP1's FullyShardedDataParallel is not used: it
    runs on CUDA only, and needs `use_orig_params` for per-parameter weight decay."""
    try:
        from torch.distributed.fsdp import fully_shard  # torch ≥ 2.6
    except ImportError:
        from torch.distributed._composable.fsdp import fully_shard  # torch 2.4, 2.5
    from torch.distributed.device_mesh import init_device_mesh

    return fully_shard, init_device_mesh


def wrap(model, block, env, strategy):
    """(model to train, description, kind): FSDP (each transformer block sharded on its own, the
    embeddings, final norm and tied head together in the root), DistributedDataParallel, or the
    model itself in one process. Parameter names stay the model's own under all three."""
    if env.backend is None:
        return model, "one process, no torch.distributed", "single"
    where = f"{env.world} processes on {env.device.type} ({env.backend})"
    fsdp_problem = None
    if strategy in ("auto", "fsdp"):
        try:
            fully_shard, init_device_mesh = fully_shard_api()
            mesh = init_device_mesh(env.device.type, (env.world,))
            for module in model.modules():
                if isinstance(module, block):
                    fully_shard(module, mesh=mesh)
            fully_shard(model, mesh=mesh)
            return model, f"FSDP (fully_shard, parameters sharded across processes), {where}", "fsdp"
        except Exception as e:  # an import or construction failure is the same on every rank
            fsdp_problem = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]}"
            if strategy == "fsdp":
                raise UserError(f"FSDP cannot run in PyTorch {torch.__version__} on {env.device.type} ({fsdp_problem})")
    from torch.nn.parallel import DistributedDataParallel as DDP

    wrapped = DDP(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    how = f"DistributedDataParallel (the model replicated, not sharded), {where}"
    if fsdp_problem is not None:
        how += f"; FSDP cannot run in PyTorch {torch.__version__} here: {fsdp_problem}"
    return wrapped, how, "ddp"


def full_state_dict(model, kind, prefix):
    """The whole model's tensors on the CPU, by Hugging Face name (`prefix` of the parameter names
    dropped; a collective under FSDP)."""
    inner = model.module if kind == "ddp" else model
    state = {}
    for name, t in inner.state_dict().items():
        if hasattr(t, "full_tensor"):  # an FSDP shard (DTensor): gather it
            t = t.full_tensor()
        state[name.removeprefix(prefix)] = t.detach().cpu()
    return state


# ---------------------------------------------------------------------------------------------
# Validation loss (core/evaluate.ts): windows [s, s + T] for s = 0, T, 2T, ..., every complete one
# (at most max_tokens / T of them), mean cross-entropy over all their targets.


@torch.no_grad()
def validation_loss(model, kind, stream, T, B, env, max_tokens=None):
    windows = max(0, (stream.length - 1) // T)
    if max_tokens is not None:
        windows = min(windows, max_tokens // T)
    batches = -(-windows // B)
    rounds = -(-batches // env.world)  # every process runs the same number of forwards (FSDP)
    forward = model.module if kind == "ddp" else model
    total, count = 0.0, 0
    for r in range(rounds):
        first = (r * env.world + env.rank) * B
        rows = [w for w in range(first, first + B) if w < windows]
        if rows:
            data = np.stack([stream.read(w * T, T + 1) for w in rows])
            x, y = torch.from_numpy(data[:, :T]), torch.from_numpy(data[:, 1:])
        else:
            x, y = torch.zeros(1, T, dtype=torch.long), torch.full((1, T), -1, dtype=torch.long)
        logits, _ = forward(x.to(env.device), None)
        losses = F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]),
            y.to(env.device).reshape(-1),
            ignore_index=-1,
            reduction="none",
        )
        total += losses.double().sum().item()
        count += len(rows) * T
    total, count = env.sum([total, count])
    return total / count, int(count)


# ---------------------------------------------------------------------------------------------
# Command line


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(message)


def integer(minimum=1):
    """argparse type: an integer ≥ minimum."""

    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {json.dumps(text)}")
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be ≥ {minimum}, got {v}")
        return v

    return parse


def number(low, high=math.inf, low_open=False):
    """argparse type: a finite number in [low, high] (or (low, high])."""

    def parse(text):
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {json.dumps(text)}")
        if not math.isfinite(v) or v < low or (low_open and v == low) or v > high:
            raise argparse.ArgumentTypeError(f"must be in {'(' if low_open else '['}{low}, {high}], got {text}")
        return v

    return parse


def parse_args(argv):
    p = Parser(
        prog="fsdp_train.py",
        allow_abbrev=False,
        description="Continue training a model folder with PyTorch (FSDP under torch.distributed.run), "
        "on the same token shards and in the same data order as `deno task train`.",
        epilog="Launch on N GPUs with: python3 -m torch.distributed.run --nproc_per_node N scripts/fsdp_train.py ...",
    )
    p.add_argument("--model", required=True, help="model folder (config.json + model.safetensors)")
    p.add_argument("--data", required=True, help="prepared folder (meta.json + shards), folder of shards, or one .bin")
    p.add_argument("--out", required=True, help="output folder: model, metrics.jsonl, state.json")
    p.add_argument("--steps", type=integer(), default=None, help="optimizer steps (100)")
    p.add_argument("--epochs", type=number(0, low_open=True), help="steps to cover this many epochs")
    p.add_argument("--batch", type=integer(), default=8, help="sequences per micro-step per process (8)")
    p.add_argument("--ctx", type=integer(), help="sequence length T (min(longest context, 128))")
    p.add_argument("--accumulation", type=integer(), default=1, help="micro-steps per step (1)")
    p.add_argument("--lr", type=number(0), default=6e-4, help="peak learning rate (6e-4)")
    p.add_argument("--warmup", type=integer(0), default=0, help="warm-up steps (0)")
    p.add_argument("--subset", type=number(0, 1, low_open=True), default=1.0, help="fraction of windows (1)")
    p.add_argument("--seed", type=integer(0), default=1337, help="data order and subset seed (1337)")
    p.add_argument("--eval-every", type=integer(0), default=0, help="validate every K steps (0: at the end)")
    p.add_argument("--eval-tokens", type=integer(), help="validation targets scored (all)")
    p.add_argument("--log-every", type=integer(), default=10, help="log every K steps (10)")
    p.add_argument("--save-every", type=integer(0), default=0, help="also checkpoint every K steps (0)")
    p.add_argument(
        "--strategy",
        choices=("auto", "fsdp", "ddp"),
        default="auto",
        help="auto: FSDP, or DDP where FSDP cannot run on CPU",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when available")
    p.add_argument(
        "--modeling",
        choices=("auto", "transformers", "builtin"),
        default="auto",
        help="the model's code: transformers' class of the folder, or this script's GPT-2/Llama; "
        "auto: transformers when installed",
    )
    args = p.parse_args(argv)
    if args.steps is not None and args.epochs is not None:
        raise UserError("--steps and --epochs exclude each other")
    return args


def main(argv):
    args = parse_args(argv)
    loaded = load_model(args.model, args.modeling)
    family, cfg, model, max_t = loaded.family, loaded.cfg, loaded.model, loaded.max_t
    T = args.ctx if args.ctx is not None else min(max_t, 128)
    if T > max_t:
        raise UserError(f"--ctx must be ≤ {max_t}, the model's longest context, got {T}")
    vocab_size = model.vocab_size
    meta, streams = open_dataset(args.data)
    check_data(cfg, vocab_size, meta, streams, args.data)
    if "train" not in streams:
        raise UserError(f"{args.data}: no train split (has {', '.join(streams)})")
    order = WindowOrder(streams["train"].length, T, args.seed, args.subset)
    val = streams.get("val")
    if val is not None and val.length == 0:
        val = None
    if val is not None:
        windows = (val.length - 1) // T
        if args.eval_tokens is not None:
            windows = min(windows, args.eval_tokens // T)
        if windows < 1:
            raise UserError(
                f"{args.data}: validation needs at least one window of {T + 1} tokens (and --eval-tokens ≥ {T})"
            )

    env = Dist(args.device)
    B, A, W = args.batch, args.accumulation, env.world
    G = B * W * A
    steps = math.ceil(args.epochs * order.per_epoch / G) if args.epochs is not None else (args.steps or 100)
    main_rank = env.rank == 0
    say = print if main_rank else (lambda *a, **k: None)
    model.to(env.device)
    n_params = sum(p.numel() for p in model.parameters())
    decay = {n for n, p in model.named_parameters() if p.dim() >= 2}
    train_model, how, kind = wrap(model, loaded.block, env, args.strategy)
    named = list(model.named_parameters())  # after wrapping: FSDP swaps in shards, same names
    groups = [
        {"params": [p for n, p in named if n in decay], "weight_decay": 0.1},
        {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    say(f"model: {family} {args.model}, {n_params:,} parameters, {loaded.how}")
    say(f"training: {how}")
    say(
        f"data: {args.data}, {order.per_epoch} windows of {T} tokens per epoch; step = {W} × {B} rows × {A} "
        f"micro-steps = {G} windows; {steps} steps"
    )

    os.makedirs(args.out, exist_ok=True)
    metrics_path = os.path.join(args.out, "metrics.jsonl")
    if main_rank:
        open(metrics_path, "w").close()

    def checkpoint(step):
        state = full_state_dict(train_model, kind, loaded.prefix)
        if main_rank:
            save_model(args.out, args.model, cfg, state, loaded.tied)
            record = {
                "step": step,
                "batches": order.state(step * G),
                "meta": {"trainer": "scripts/fsdp_train.py", "args": argv},
            }
            with open(os.path.join(args.out, "state.json.tmp"), "w") as f:
                f.write(json.dumps(record, indent=2) + "\n")
            os.replace(os.path.join(args.out, "state.json.tmp"), os.path.join(args.out, "state.json"))

    start = last_time = time.time()
    tokens_seen = last_tokens = 0
    loss_sum = torch.zeros((), dtype=torch.float64, device=env.device)
    last = {}
    for step in range(steps):
        lr = learning_rate(step, args.lr, args.warmup, steps)
        for g in opt.param_groups:
            g["lr"] = lr
        done = step + 1
        loss_sum.zero_()
        eval_now = val is not None and ((args.eval_every > 0 and done % args.eval_every == 0) or done == steps)
        logging = done % args.log_every == 0 or done == steps or eval_now
        for i in range(A):
            base = step * G + i * B * W + env.rank * B
            rows = [order.window(base + b)[0] for b in range(B)]
            data = np.stack([streams["train"].read(w * T, T + 1) for w in rows])
            x = torch.from_numpy(data[:, :T]).to(env.device)
            y = torch.from_numpy(data[:, 1:]).to(env.device)
            sync = i == A - 1  # gradients are reduced across processes once per step
            if kind == "fsdp":
                train_model.set_requires_gradient_sync(sync)
            with train_model.no_sync() if kind == "ddp" and not sync else contextlib.nullcontext():
                _, loss = train_model(x, y)
                (loss / A).backward()
            loss_sum += loss.detach().double()
        torch.nn.utils.clip_grad_norm_(train_model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens_seen += G * T
        if not logging:
            continue
        # Epoch of the step's last micro-batch (Deno: its first row, with a batch of B·P rows).
        epoch = order.window(step * G + (A - 1) * B * W)[1]
        (total,) = env.sum([loss_sum.item()])
        now = time.time()
        m = {
            "step": done,
            "loss": total / (W * A),  # mean over the step's micro-batches of every process
            "lr": lr,
            "tokens_per_s": (tokens_seen - last_tokens) / max(1e-9, now - last_time),
            "tokens": tokens_seen,
            "elapsed_s": now - start,
            "epoch": epoch,
        }
        if eval_now:
            m["val_loss"], val_count = validation_loss(train_model, kind, val, T, B, env, args.eval_tokens)
            last["val_tokens"] = val_count
        last_time, last_tokens = time.time(), tokens_seen
        last.update(m)
        if main_rank:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(m) + "\n")
            extra = f" | val_loss {m['val_loss']:.4f}" if "val_loss" in m else ""
            say(
                f"step {done}/{steps} | loss {m['loss']:.4f} | lr {lr:.2e} | {m['tokens_per_s']:.0f} tokens/s{extra}",
                flush=True,
            )
        if args.save_every > 0 and done % args.save_every == 0 and done != steps:
            checkpoint(done)
    checkpoint(steps)
    if "val_loss" in last:
        say(f"val_loss {last['val_loss']!r} over {last['val_tokens']} tokens at ctx {T}")
    say(json.dumps({"step": steps, "loss": last.get("loss"), "val_loss": last.get("val_loss"), "out": args.out}))
    env.close()


def run():
    try:
        main(sys.argv[1:])
    except UserError as e:
        if os.environ.get("RANK", "0") == "0":
            print(f"fsdp_train.py: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    run()
