"""Reference numbers for the model families of issue 22 (Llama 3.x, Qwen2, Qwen3, Mistral, Phi-3,
Gemma 3), from Hugging Face `transformers`' own model classes: a tiny random model of each family
with every feature of that family turned on (tests/fixtures/FAMILIES.md lists them).

Run with a throwaway virtual environment (the test suite itself never needs Python):

    python3 -m venv /tmp/venv22
    /tmp/venv22/bin/pip install torch transformers safetensors gguf numpy
    /tmp/venv22/bin/python scripts/family_fixtures.py

(written with torch 2.13 CPU, transformers 5.18, gguf 0.19). For each FAMILY it writes, in float32:

- tests/fixtures/FAMILY_tiny/config.json: the config in the v4 form Hub files use (rope_theta,
  rope_scaling, rope_local_base_freq, sliding_window_pattern), written by hand;
  config_v5.json: the same config as transformers 5 writes it (rope_parameters, layer_types);
  model.safetensors: the initial model, Hugging Face names and layout, F32.
- tests/fixtures/FAMILY_tiny_expected.safetensors: tokens, targets, logits, loss, grad.<name>,
  gradnorm1, gradnorm2, loss2 and step2.<name> after two clipped AdamW steps (as
  scripts/fixture_tools.py takes them), greedy_prompt (the first row's first 4 tokens) and greedy
  (the 8 ids `generate` adds to it, do_sample=False, with its KV cache).
- tests/fixtures/FAMILY_tiny/model.gguf for the llama.cpp architectures llama (from llama3), qwen2,
  qwen3, gemma3 and phi3, F32 (llama3_tiny/model_f16.gguf also in F16), with llama.cpp's tensor
  names and `<arch>.*` keys as its convert_hf_to_gguf.py writes them.

Checks made here, each an assertion: the v4 and the v5 config load in transformers (from_pretrained,
no missing or unexpected tensor) to the same logits, equal to the generating model's; the
safetensors file holds what save_pretrained writes; every listed feature changes the logits (so a
decoder that ignores it fails the tests); greedy with the cache equals an argmax loop without it,
and the float64 model picks the same ids; the GGUF files read back (gguf's GGUFReader) to the
Hugging Face tensors; and a float64 rerun (fixture_tools.check) agrees with the stored numbers. The
float64 rerun's worst relative errors are printed per family: the float32 noise the tests must
tolerate.
"""

import copy
import importlib.metadata
import math
import os
import shutil
import tempfile

import gguf
import numpy as np
import safetensors.numpy
import torch
import torch.nn.functional as F
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

from fixture_tools import SEED, check, metadata, read_safetensors, report, save_fixture, train_two_steps

B, T = 2, 16
PROMPT, NEW = 4, 8  # greedy: the first row's first PROMPT tokens, NEW ids generated
# Every matrix N(0, STD), above Hugging Face's 0.02 so that attention is far from uniform: at 0.03
# the llama3 scaling moved the logits by 1.8e-3 of their largest, at 0.05 by 5.7e-3.
STD = 0.05
NOISE = 0.1  # added to every norm weight and bias so the tests exercise them
MIN_EFFECT = 1e-3  # each feature must move the logits by more than this (relative), 10x the tests' tolerance
MIN_MARGIN = 1e-3  # greedy: the top logit must lead the second by more than this at every step

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")

# Keys every config below shares. No token ids: the fixtures have no tokenizer, and a default
# eos id would stop a greedy continuation that happens to produce it.
COMMON = {"bos_token_id": None, "eos_token_id": None, "pad_token_id": None, "initializer_range": STD}


def family(model_type, architecture, dims, v5, v4, features, gguf_arch=None):
    """One family: its `model_type` and class name, its sizes, its config as transformers 5 takes
    it (`v5`), the same config in the Hub's v4 keys (`v4`), the features it turns on, each with the
    config or weight change that turns it off again, and its llama.cpp architecture."""
    L, C, H, NH, NKV, V, max_pos = dims
    sizes = {
        "vocab_size": V,
        "hidden_size": C,
        "intermediate_size": H,
        "num_hidden_layers": L,
        "num_attention_heads": NH,
        "num_key_value_heads": NKV,
        "max_position_embeddings": max_pos,
    }
    head = {"architectures": [architecture], "model_type": model_type}
    v4 = {**head, **sizes, **v4, **COMMON, "torch_dtype": "float32", "use_cache": True}
    v5 = {**sizes, **v5, **COMMON}
    return {"model_type": model_type, "v5": v5, "v4": v4, "features": features, "gguf": gguf_arch}


def rope(theta, **scaling):
    return {"rope_theta": theta, "rope_type": "default", **scaling}


# A feature's switch changes a copy of the config or of the weights so that the feature is off.


def setting(key, value):
    return lambda cfg, _: setattr(cfg, key, value)


def zero_biases(_, weights):
    for n, t in weights.items():
        if n.endswith(".bias"):
            t.zero_()


LLAMA3_SCALING = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 256,
}

# (L, C, H, NH, NKV, V, max_position_embeddings)
FAMILIES = {
    # head size 8, θ 500000: the four frequencies have wavelengths 6.3, 167, 4.4e3 and 1.2e5
    # positions; with original_max_position_embeddings 256 the first stays (< 256/4), the second is
    # interpolated (smooth 0.18) and the last two are divided by 8. At position 15 the second
    # turns 0.16 instead of 0.56 radians.
    "llama3": family(
        "llama",
        "LlamaForCausalLM",
        (2, 32, 64, 4, 2, 96, 1024),
        {"rope_parameters": rope(500000.0, **LLAMA3_SCALING), "tie_word_embeddings": False, "rms_norm_eps": 1e-5},
        {
            "hidden_act": "silu",
            "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0,
            "rope_scaling": LLAMA3_SCALING,
            "tie_word_embeddings": False,
            "attention_bias": False,
            "mlp_bias": False,
        },
        {
            "llama3 RoPE scaling": setting("rope_parameters", rope(500000.0)),
        },
        "llama",
    ),
    # Qwen2 always has q/k/v biases. Its sliding window is off (use_sliding_window false, as in
    # every Qwen2.5 checkpoint); the v4 file keeps a window of 4 that a loader must ignore.
    "qwen2": family(
        "qwen2",
        "Qwen2ForCausalLM",
        (2, 32, 64, 4, 2, 80, 128),
        {
            "rope_parameters": rope(1000000.0),
            "tie_word_embeddings": True,
            "rms_norm_eps": 1e-6,
            "use_sliding_window": False,
            "sliding_window": 4,
            "max_window_layers": 1,
        },
        {
            "hidden_act": "silu",
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            "rope_scaling": None,
            "tie_word_embeddings": True,
            "use_sliding_window": False,
            "sliding_window": 4,
            "max_window_layers": 1,
            "attention_dropout": 0.0,
        },
        {"q/k/v biases": zero_biases},
        "qwen2",
    ),
    # head_dim 16 while C/NH = 8: q_proj is (64, 32), o_proj (32, 64); one KV head (MQA).
    "qwen3": family(
        "qwen3",
        "Qwen3ForCausalLM",
        (2, 32, 64, 4, 1, 72, 128),
        {
            "head_dim": 16,
            "rope_parameters": rope(1000000.0),
            "tie_word_embeddings": True,
            "rms_norm_eps": 1e-6,
            "attention_bias": False,
        },
        {
            "head_dim": 16,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            "rope_scaling": None,
            "tie_word_embeddings": True,
            "attention_bias": False,
            "use_sliding_window": False,
            "sliding_window": None,
            "max_window_layers": 2,
            "attention_dropout": 0.0,
        },
        {},
        "qwen3",
    ),
    # Each position sees itself and the 4 before it (window 5) in every layer.
    "mistral": family(
        "mistral",
        "MistralForCausalLM",
        (2, 32, 64, 4, 2, 64, 128),
        {"rope_parameters": rope(10000.0), "sliding_window": 5, "tie_word_embeddings": False, "rms_norm_eps": 1e-5},
        {
            "hidden_act": "silu",
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "sliding_window": 5,
            "tie_word_embeddings": False,
            "attention_dropout": 0.0,
        },
        {"sliding window 5": setting("sliding_window", None)},
    ),
    # Fused qkv_proj (rows: q, then k, then v) and gate_up_proj (rows: gate, then up); plain RoPE
    # over the whole head; a window of 7 (Phi-3 mini ships 2047).
    "phi3": family(
        "phi3",
        "Phi3ForCausalLM",
        (2, 32, 64, 4, 2, 70, 128),
        {
            "rope_parameters": rope(10000.0, partial_rotary_factor=1.0),
            "original_max_position_embeddings": 128,
            "sliding_window": 7,
            "tie_word_embeddings": False,
            "rms_norm_eps": 1e-5,
        },
        {
            "hidden_act": "silu",
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "rope_scaling": None,
            "original_max_position_embeddings": 128,
            "sliding_window": 7,
            "tie_word_embeddings": False,
            "attention_bias": False,
            "attention_dropout": 0.0,
            "embd_pdrop": 0.0,
            "resid_pdrop": 0.0,
        },
        {"sliding window 7": setting("sliding_window", None)},
        "phi3",
    ),
    # Layers local (window 4, θ 10000), global (θ 1e6, linear scaling 8), local.
    "gemma3_text": family(
        "gemma3_text",
        "Gemma3ForCausalLM",
        (3, 32, 64, 2, 1, 64, 128),
        {
            "head_dim": 256,
            "hidden_activation": "gelu_pytorch_tanh",
            "query_pre_attn_scalar": 64,
            "sliding_window": 4,
            "layer_types": ["sliding_attention", "full_attention", "sliding_attention"],
            "rope_parameters": {
                "full_attention": rope(1000000.0, rope_type="linear", factor=8.0),
                "sliding_attention": rope(10000.0),
            },
            "final_logit_softcapping": 5.0,
            "attn_logit_softcapping": None,
            "tie_word_embeddings": True,
            "rms_norm_eps": 1e-6,
        },
        {
            "head_dim": 256,
            "hidden_activation": "gelu_pytorch_tanh",
            "query_pre_attn_scalar": 64,
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            "rope_local_base_freq": 10000.0,
            "rope_scaling": {"rope_type": "linear", "factor": 8.0},
            "sliding_window": 4,
            "sliding_window_pattern": 2,
            "final_logit_softcapping": 5.0,
            "attn_logit_softcapping": None,
            "tie_word_embeddings": True,
            "attention_bias": False,
            "attention_dropout": 0.0,
        },
        {
            "sliding window 4 on local layers": setting("sliding_window", 4096),
            "local RoPE base 10000": lambda cfg, _: cfg.rope_parameters["sliding_attention"].update(rope_theta=1e6),
            "linear RoPE scaling 8 on global layers": lambda cfg, _: cfg.rope_parameters.update(
                full_attention=rope(1e6)
            ),
            "query_pre_attn_scalar 64": setting("query_pre_attn_scalar", 256),
            "final_logit_softcapping 5": setting("final_logit_softcapping", None),
        },
        "gemma3",
    ),
}


def main():
    torch.use_deterministic_algorithms(True)
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    versions = (torch.__version__, transformers.__version__, importlib.metadata.version("gguf"))
    print("torch {}, transformers {}, gguf {}".format(*versions))
    for name, fam in FAMILIES.items():
        write_family(name, fam)


def build(cfg, dtype=torch.float32):
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=dtype)
    return model.eval()  # no dropout; gradients flow as in training


def hf_forward(model):
    """The fixture's (logits, loss): Hugging Face's own loss shifts its labels, the fixtures'
    targets are shifted already."""

    def forward(tokens, targets):
        logits = model(input_ids=tokens).logits
        return logits, F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    return forward


def load_weights(model, weights):
    """Copies `weights` (name -> tensor) into `model`; a tied head comes along with the embedding."""
    params = dict(model.named_parameters())
    assert set(params) == set(weights), set(params) ^ set(weights)
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(torch.as_tensor(weights[n]))
    return model


def write_family(name, fam):
    fixture = f"{name}_tiny"
    folder = os.path.join(ROOT, fixture)
    cfg = AutoConfig.for_model(fam["model_type"], **fam["v5"])
    torch.manual_seed(SEED)
    model = build(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * NOISE)
    V = cfg.vocab_size
    initial, tokens, targets, expected = train_two_steps(model, V, B, T, forward=hf_forward(model))

    fresh = load_weights(build(cfg), initial)
    with torch.no_grad():
        assert torch.equal(fresh(input_ids=tokens).logits, expected["logits"]), "the forward pass is not deterministic"
    effects = feature_effects(cfg, fam["features"], initial, tokens, expected["logits"])
    prompt = tokens[:1, :PROMPT]
    greedy, margin = greedy_ids(fresh, prompt)
    expected["greedy_prompt"] = prompt[0].float()
    expected["greedy"] = greedy.float()

    meta = metadata(B, T)
    meta.update({"family": name, "transformers": transformers.__version__, "greedy": f"{PROMPT} prompt ids, {NEW} new"})
    paths = save_fixture(folder, fam["v4"], initial, expected, meta)
    config_v5 = same_model_from_both_configs(folder, cfg, tokens, expected["logits"])

    model64 = load_weights(build(cfg, torch.float64), initial)
    greedy64, _ = greedy_ids(model64, prompt)
    assert torch.equal(greedy, greedy64), (greedy, greedy64)
    worst = check(model64, paths, initial, expected, tokens, targets, forward=hf_forward(model64))
    # float32 rounding reaches ~1e-4 on the logits; element by element more on the gradients and,
    # after two AdamW steps, where Adam divides near-zero gradients by their own size, on the
    # parameters: the tests compare those norm-wise.
    for key, err in worst.items():
        assert err < (1e-4 if key.endswith("_nw") else 1e-3) or key in ("grad", "step2"), (key, err)
    report(fixture, V, initial, expected, paths, worst)
    print(f"wrote {os.path.relpath(config_v5)} ({os.path.getsize(config_v5)} bytes)")
    print(f"greedy {prompt[0].tolist()} -> {greedy.tolist()} (top-1 lead at least {margin:.3g}; float64 agrees)")
    for feature, effect in effects.items():
        print(f"  {feature}: off moves the logits by {effect:.3g} of their largest")
    if fam["gguf"]:
        write_gguf(folder, fam, cfg, initial, np.float32)
        if name == "llama3":
            write_gguf(folder, fam, cfg, initial, np.float16)
    print()


def relative_change(a, b):
    return float((a - b).abs().max() / b.abs().max())


def feature_effects(cfg, features, initial, tokens, logits):
    """For each feature, how far turning it off moves the logits, asserted above MIN_EFFECT."""
    effects = {}
    for feature, turn_off in features.items():
        off_cfg, off_weights = copy.deepcopy(cfg), {n: t.clone() for n, t in initial.items()}
        turn_off(off_cfg, off_weights)
        model = load_weights(build(off_cfg), off_weights)
        with torch.no_grad():
            effects[feature] = relative_change(model(input_ids=tokens).logits, logits)
        assert effects[feature] > MIN_EFFECT, (feature, effects[feature])
    return effects


def greedy_ids(model, prompt):
    """The NEW ids `generate` adds to `prompt` (greedy, KV cache on), checked against an argmax
    loop over full forward passes; and the smallest lead of the top logit over the second."""
    gen = GenerationConfig(
        do_sample=False,
        max_new_tokens=NEW,
        min_new_tokens=0,
        use_cache=True,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        output_scores=True,
        return_dict_in_generate=True,
    )
    with torch.no_grad():
        out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), generation_config=gen)
        new = out.sequences[0, PROMPT:]
        assert len(new) == NEW
        seq = prompt
        for _ in range(NEW):
            nxt = model(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
        assert torch.equal(seq[0, PROMPT:], new), (seq, new)
        top2 = torch.stack([s[0].topk(2).values for s in out.scores])
    margin = float((top2[:, 0] - top2[:, 1]).min())
    assert margin > MIN_MARGIN, f"greedy is a near tie ({margin})"
    return new, margin


def same_model_from_both_configs(folder, cfg, tokens, logits):
    """Loads the fixture folder with its v4 config.json and again with the v5 config transformers
    writes (saved as config_v5.json), asserting both give the generating model's logits, and that
    model.safetensors holds what save_pretrained writes. Returns the v5 file's path."""
    with tempfile.TemporaryDirectory() as tmp:
        saved = load_weights(build(cfg), read_tensors(os.path.join(folder, "model.safetensors")))
        saved.save_pretrained(tmp)
        ours = safetensors.numpy.load_file(os.path.join(folder, "model.safetensors"))
        theirs = safetensors.numpy.load_file(os.path.join(tmp, "model.safetensors"))
        assert set(ours) == set(theirs), set(ours) ^ set(theirs)
        for n in ours:
            assert theirs[n].dtype == np.float32 and np.array_equal(ours[n], theirs[n]), n
        config_v5 = os.path.join(folder, "config_v5.json")
        shutil.copyfile(os.path.join(tmp, "config.json"), config_v5)
        loaded = {}
        for form, where in (("v4", folder), ("v5", tmp)):
            model, info = AutoModelForCausalLM.from_pretrained(
                where, attn_implementation="eager", dtype=torch.float32, output_loading_info=True
            )
            assert not any(info.values()), (form, info)
            with torch.no_grad():
                out = model.eval()(input_ids=tokens).logits
            assert torch.equal(out, logits), (form, relative_change(out, logits))
            loaded[form] = model.config
    for key in ("rope_parameters", "layer_types", "sliding_window", "head_dim"):
        assert getattr(loaded["v4"], key, None) == getattr(loaded["v5"], key, None), key
    return config_v5


def read_tensors(path):
    tensors, _ = read_safetensors(path)
    return {n: torch.from_numpy(t.copy()) for n, t in tensors.items()}


# ---------------------------------------------------------------------------------------------
# GGUF


def llama_permute(w, n_head):
    """llama.cpp's `llama` architecture rotates adjacent pairs (x0, y0, x1, y1...) where Hugging
    Face rotates halves (x0..x(d/2-1), y0..): within each head, row i of the second half moves
    next to row i of the first."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama_unpermute(w, n_head):
    """The inverse of llama_permute."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama3_rope_factors(cfg):
    """What llama.cpp divides each RoPE frequency by (its rope_freqs tensor), as convert_hf_to_gguf
    derives it from the llama3 scaling; checked against transformers' own scaled frequencies."""
    params = cfg.rope_parameters
    dim = cfg.head_dim
    freqs = 1.0 / (params["rope_theta"] ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    old = params["original_max_position_embeddings"]
    low, high, factor = params["low_freq_factor"], params["high_freq_factor"], params["factor"]
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old / high:
            factors.append(1.0)
        elif wavelen > old / low:
            factors.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    factors = np.array(factors, np.float32)
    scaled, _ = transformers.modeling_rope_utils.ROPE_INIT_FUNCTIONS["llama3"](cfg, "cpu")
    assert np.allclose(freqs / factors, scaled.numpy(), rtol=1e-6), (freqs / factors, scaled)
    assert len(set(factors.tolist())) == 3, f"the three llama3 regimes, got {factors}"
    return factors


def gguf_keys(fam, cfg, arch):
    """The `<arch>.*` keys convert_hf_to_gguf.py writes for this config (its TextModel base and the
    architecture's class), then, for Gemma 3, three that llama.cpp hard-codes instead and our tiny
    model does not share. Returns {key: value}; ints are written as uint32, floats as float32."""
    K, A, R = gguf.Keys.LLM, gguf.Keys.Attention, gguf.Keys.Rope
    rp = cfg.rope_parameters
    keys = {
        K.BLOCK_COUNT: cfg.num_hidden_layers,
        K.CONTEXT_LENGTH: cfg.max_position_embeddings,
        K.EMBEDDING_LENGTH: cfg.hidden_size,
        K.FEED_FORWARD_LENGTH: cfg.intermediate_size,
        A.HEAD_COUNT: cfg.num_attention_heads,
        A.HEAD_COUNT_KV: cfg.num_key_value_heads,
        A.LAYERNORM_RMS_EPS: cfg.rms_norm_eps,
    }
    if "head_dim" in fam["v4"]:
        keys.update({A.KEY_LENGTH: cfg.head_dim, A.VALUE_LENGTH: cfg.head_dim})
    if arch == "llama":
        keys.update({K.VOCAB_SIZE: cfg.vocab_size, R.DIMENSION_COUNT: cfg.head_dim})
    if arch == "phi3":
        keys.update(
            {
                R.SCALING_ORIG_CTX_LEN: cfg.original_max_position_embeddings,
                R.DIMENSION_COUNT: int(rp["partial_rotary_factor"] * cfg.hidden_size) // cfg.num_attention_heads,
                A.SLIDING_WINDOW: cfg.sliding_window,
            }
        )
    if arch != "gemma3":
        keys[R.FREQ_BASE] = rp["rope_theta"]
        return {k.format(arch=arch): v for k, v in keys.items()}
    keys.update(
        {
            R.FREQ_BASE: rp["full_attention"]["rope_theta"],
            R.FREQ_BASE_SWA: rp["sliding_attention"]["rope_theta"],
            R.SCALING_TYPE: gguf.RopeScalingType.LINEAR.value,
            R.SCALING_FACTOR: rp["full_attention"]["factor"],
            A.KEY_LENGTH: cfg.head_dim,
            A.VALUE_LENGTH: cfg.head_dim,
            K.FINAL_LOGIT_SOFTCAPPING: cfg.final_logit_softcapping,
            A.SLIDING_WINDOW: cfg.sliding_window,
            # Not written by convert_hf_to_gguf.py, where llama.cpp's gemma3 takes every 6th layer
            # as global and scales attention by 1/sqrt(head_dim) (but for 27B).
            A.SLIDING_WINDOW_PATTERN: [t == "sliding_attention" for t in cfg.layer_types],
            A.SCALE: cfg.query_pre_attn_scalar**-0.5,
        }
    )
    return {k.format(arch=arch): v for k, v in keys.items()}


def add_key(writer, key, value):
    if isinstance(value, bool) or isinstance(value, list):
        writer.add_array(key, value)
    elif isinstance(value, int):
        writer.add_uint32(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    else:
        writer.add_string(key, value)


def gguf_tensors(cfg, arch, initial):
    """Hugging Face tensors under llama.cpp's names (gguf's own TensorNameMap for `arch`), with the
    changes convert_hf_to_gguf.py makes: llama's q/k rows permuted, Gemma's norm weights + 1, a
    llama3 rope_freqs tensor. A tied head is written once, as token_embd. Returns {GGUF name:
    (Hugging Face name or None, array)}."""
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.upper()], cfg.num_hidden_layers)
    out = {}
    for hf_name, t in initial.items():
        w = t.numpy().astype(np.float32)
        if arch == "llama" and hf_name.endswith("q_proj.weight"):
            w = llama_permute(w, cfg.num_attention_heads)
        elif arch == "llama" and hf_name.endswith("k_proj.weight"):
            w = llama_permute(w, cfg.num_key_value_heads)
        if arch == "gemma3" and hf_name.endswith("norm.weight"):
            w = w + np.float32(1.0)
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        assert gguf_name is not None, (arch, hf_name)
        out[gguf_name] = (hf_name, w)
    if arch == "llama" and cfg.rope_parameters.get("rope_type") == "llama3":
        out[gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight"] = (None, llama3_rope_factors(cfg))
    return out


def from_gguf(cfg, arch, hf_name, w):
    """Undoes gguf_tensors' changes to one tensor, as a GGUF reader must."""
    if arch == "llama" and hf_name.endswith("q_proj.weight"):
        return llama_unpermute(w, cfg.num_attention_heads)
    if arch == "llama" and hf_name.endswith("k_proj.weight"):
        return llama_unpermute(w, cfg.num_key_value_heads)
    if arch == "gemma3" and hf_name.endswith("norm.weight"):
        return w - np.float32(1.0)
    return w


def write_gguf(folder, fam, cfg, initial, dtype):
    """model.gguf (F32) or model_f16.gguf (F16 matrices; vectors stay F32 as llama.cpp keeps
    them), read back with GGUFReader: every key, and every tensor, its changes undone, equal to
    the Hugging Face tensor (rounded to F16 where stored so; Gemma's norms within the rounding
    of w + 1)."""
    arch = fam["gguf"]
    f16 = dtype == np.float16
    path = os.path.join(folder, "model_f16.gguf" if f16 else "model.gguf")
    writer = gguf.GGUFWriter(path, arch)
    writer.add_name(os.path.basename(folder))
    keys = gguf_keys(fam, cfg, arch)
    for key, value in keys.items():
        add_key(writer, key, value)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    tensors = gguf_tensors(cfg, arch, initial)
    for n, (_, w) in tensors.items():
        writer.add_tensor(n, w.astype(dtype) if w.ndim == 2 else w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    reader = gguf.GGUFReader(path)
    assert reader.fields["general.architecture"].contents() == arch
    for key, value in keys.items():
        got = reader.fields[key].contents()
        assert got == (float(np.float32(value)) if isinstance(value, float) else value), (key, got, value)
    back = {t.name: t for t in reader.tensors}
    assert set(back) == set(tensors), set(back) ^ set(tensors)
    for n, (hf_name, w) in tensors.items():
        t = back[n]
        stored = dtype if w.ndim == 2 else np.float32
        assert t.data.dtype == stored and list(t.shape) == list(reversed(w.shape)), (n, t.data.dtype, t.shape)
        data = np.asarray(t.data).reshape(w.shape)
        if hf_name is None:
            assert np.array_equal(data, w), n
            continue
        got = from_gguf(cfg, arch, hf_name, data.astype(np.float32))
        want = initial[hf_name].numpy()
        if stored == np.float16:
            want = want.astype(np.float16).astype(np.float32)
        atol = 2.0**-23 if arch == "gemma3" and hf_name.endswith("norm.weight") else 0.0
        assert np.allclose(got, want, rtol=0.0, atol=atol), (n, np.abs(got - want).max())
    size = os.path.getsize(path)
    print(f"wrote {os.path.relpath(path)} ({size} bytes): {arch}, {len(tensors)} tensors, {len(reader.fields)} keys")


if __name__ == "__main__":
    main()
