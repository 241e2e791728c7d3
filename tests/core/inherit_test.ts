import assert from "node:assert/strict";
import { join } from "node:path";
import { createView, getGpu, read, Recorder, write } from "@inheritune/kernels";
import {
  type Checkpoint,
  createModel,
  type DecoderConfig,
  type GPT2Config,
  inherit,
  initParams,
  loadModel,
  type ModelConfig,
  paramSpecs,
  saveModel,
  selectBlocks,
  shortName,
} from "@inheritune/core";
import { assertThrows } from "../_assert.ts";
import { withTempDir } from "../_util.ts";

const REF: GPT2Config = {
  n_layer: 6,
  n_head: 2,
  n_embd: 8,
  vocab_size: 11,
  n_positions: 4,
  layer_norm_epsilon: 1e-5,
  tokenizer: "bytes",
};

Deno.test("selectBlocks: first, last, even, list and ranked", () => {
  assert.deepEqual(selectBlocks(6, { layers: 3 }), [0, 1, 2]);
  assert.deepEqual(selectBlocks(6, { layers: 2, select: "last" }), [4, 5]);
  assert.deepEqual(selectBlocks(6, { layers: 3, select: "even" }), [0, 3, 5]);
  assert.deepEqual(selectBlocks(6, { layers: 1, select: "even" }), [0]);
  assert.deepEqual(selectBlocks(6, { select: "list", blocks: [0, 1, 2, 5] }), [0, 1, 2, 5]);
  assert.deepEqual(selectBlocks(6, { layers: 2, select: "ranked", blocks: [4, 1, 0] }), [1, 4]);
});

Deno.test("selectBlocks rejects n = 0, n > depth, unknown and repeated blocks with one line", () => {
  assertThrows(() => selectBlocks(6, { layers: 0 }), /at least 1, got 0/);
  assertThrows(() => selectBlocks(6, { layers: 7 }), /cannot inherit 7 blocks from a reference with 6/);
  assertThrows(() => selectBlocks(6, { select: "list", blocks: [0, 9] }), /block 9 does not exist: .*0\.\.5/);
  assertThrows(() => selectBlocks(6, { select: "list", blocks: [1, 1] }), /block 1 is listed twice/);
  assertThrows(() => selectBlocks(6, { select: "list", blocks: [] }), /needs --blocks/);
  assertThrows(() => selectBlocks(6, { layers: 3, select: "ranked", blocks: [1] }), /ranking of at least 3/);
  assertThrows(
    () => selectBlocks(6, { layers: 2, select: "middle" as "first" }),
    /unknown selection "middle"/,
  );
});

Deno.test("inherit copies embeddings, ln_f and the chosen blocks bit for bit", () => {
  const reference = { config: REF, params: initParams(REF, 7) };
  const target = inherit(reference, { layers: 2, select: "list", blocks: [3, 1] });
  assert.equal(target.config.n_layer, 2);
  assert.deepEqual(target.blocks, [3, 1]);
  for (const name of ["wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"]) {
    assert.deepEqual(target.params.get(name), reference.params.get(name), name);
  }
  assert.deepEqual(
    target.params.get("h.0.attn.c_attn.weight"),
    reference.params.get("h.3.attn.c_attn.weight"),
  );
  assert.deepEqual(target.params.get("h.1.mlp.c_fc.weight"), reference.params.get("h.1.mlp.c_fc.weight"));
  assert.equal(target.params.size, paramSpecs(target.config).length);
  target.params.get("wte.weight")![0] += 1;
  assert.notEqual(
    target.params.get("wte.weight")![0],
    reference.params.get("wte.weight")![0],
    "copies share memory",
  );
});

Deno.test("inherit --only attn / mlp keeps one sub-block and re-initialises the other", () => {
  const reference = { config: REF, params: initParams(REF, 7) };
  const attn = inherit(reference, { layers: 2, only: "attn", seed: 3 });
  assert.deepEqual(attn.params.get("h.1.attn.c_proj.weight"), reference.params.get("h.1.attn.c_proj.weight"));
  assert.deepEqual(attn.params.get("h.1.ln_1.weight"), reference.params.get("h.1.ln_1.weight"));
  assert.notDeepEqual(attn.params.get("h.1.mlp.c_fc.weight"), reference.params.get("h.1.mlp.c_fc.weight"));
  const mlp = inherit(reference, { layers: 2, only: "mlp", seed: 3 });
  assert.deepEqual(mlp.params.get("h.0.mlp.c_proj.weight"), reference.params.get("h.0.mlp.c_proj.weight"));
  assert.notDeepEqual(
    mlp.params.get("h.0.attn.c_attn.weight"),
    reference.params.get("h.0.attn.c_attn.weight"),
  );
  assert.deepEqual(mlp.params.get("wte.weight"), reference.params.get("wte.weight"));
});

Deno.test("inheritance through model files keeps every chosen tensor bit for bit", async () => {
  await withTempDir(async (dir) => {
    await saveModel(join(dir, "ref"), { config: REF, params: initParams(REF, 9) });
    const reference = await loadModel(join(dir, "ref"));
    await saveModel(join(dir, "target"), inherit(reference, { layers: 3, select: "even" }));
    const target = await loadModel(join(dir, "target"));
    const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
    const map: Record<number, number> = { 0: 0, 1: 3, 2: 5 };
    for (const spec of paramSpecs(target.config)) {
      const source = spec.layer < 0
        ? spec.name
        : spec.name.replace(`h.${spec.layer}.`, `h.${map[spec.layer]}.`);
      assert.deepEqual(bits(target.params.get(spec.name)!), bits(reference.params.get(source)!), spec.name);
    }
  });
});

Deno.test("inheriting every block gives the reference's logits exactly", async () => {
  const gpu = await getGpu();
  const reference = { config: REF, params: initParams(REF, 4) };
  const target = inherit(reference, { layers: REF.n_layer });
  const tokens = Uint32Array.from({ length: 2 * 4 }, (_, i) => (i * 5) % REF.vocab_size);
  const logits = [];
  for (const m of [reference, target]) {
    const model = createModel(gpu, m.config, m.params, { B: 2, T: 4 });
    write(gpu, model.tokens, tokens);
    write(gpu, model.targets, tokens);
    const out = createView(gpu, 2 * 4 * REF.vocab_size);
    const rec = new Recorder(gpu);
    model.recordForward(rec);
    model.recordLogits(rec, out);
    rec.submit();
    logits.push(await read(gpu, out));
    model.destroy();
  }
  assert.deepEqual(logits[1], logits[0]);
});

const LLAMA: DecoderConfig = {
  family: "llama",
  n_layer: 3,
  n_head: 2,
  n_kv_head: 1,
  n_embd: 8,
  n_hidden: 12,
  vocab_size: 11,
  n_positions: 4,
  norm_eps: 1e-5,
  rope_theta: 10000,
  tie_embeddings: false,
};

/** The short names of the tensors outside the blocks of `config`, as `--reinit` takes them. */
function outsideNames(config: ModelConfig): string[] {
  return [...new Set(paramSpecs(config).filter((s) => s.layer < 0).map(shortName))].sort();
}

Deno.test("shortName drops the model prefix and the weight/bias suffix of each family's tensors", () => {
  assert.deepEqual(outsideNames(REF), ["ln_f", "wpe", "wte"]);
  assert.deepEqual(outsideNames(LLAMA), ["embed_tokens", "lm_head", "norm"]);
  assert.deepEqual(outsideNames({ ...LLAMA, tie_embeddings: true }), ["embed_tokens", "norm"]);
  const spec = paramSpecs(REF).find((s) => s.name === "h.1.attn.c_attn.bias")!;
  assert.equal(shortName(spec), "h.1.attn.c_attn");
});

/** A reference whose every value moved by 0.5 from its initialisation, as training would move it. */
function trained(config: ModelConfig): Checkpoint {
  const params = initParams(config, 5);
  for (const p of params.values()) for (let i = 0; i < p.length; i++) p[i] += 0.5;
  return { config, params };
}

Deno.test("inherit --reinit initialises the named tensors afresh and copies every other", () => {
  for (const [config, reinit] of [[REF, ["ln_f", "wpe"]], [LLAMA, ["norm", "lm_head"]]] as const) {
    const reference = trained(config);
    const target = inherit(reference, { layers: 2, reinit: [...reinit], seed: 3 });
    const again = inherit(reference, { layers: 2, reinit: [...reinit], seed: 3 });
    for (const spec of paramSpecs(target.config)) {
      const got = target.params.get(spec.name)!;
      if (!(reinit as readonly string[]).includes(shortName(spec))) {
        assert.deepEqual(got, reference.params.get(spec.name), `${spec.name} is inherited`);
        continue;
      }
      assert.deepEqual(got, again.params.get(spec.name), `${spec.name}: the seed decides it`);
      const fresh = spec.init === "ones" ? 1 : spec.init === "zeros" ? 0 : undefined;
      if (fresh !== undefined) {
        assert.ok(got.every((v) => v === fresh), `${spec.name} is ${spec.init}`);
      } else {
        const std = Math.sqrt(got.reduce((s, v) => s + v * v, 0) / got.length);
        assert.ok(std > 0.01 && std < 0.03, `${spec.name} is drawn from N(0, 0.02): std ${std}`);
      }
    }
  }
});

Deno.test("inherit --reinit rejects a name that is not a tensor outside the blocks, listing those", () => {
  const reference = trained({ ...LLAMA, tie_embeddings: true });
  assertThrows(
    () => inherit(reference, { layers: 2, reinit: ["lm_head"] }),
    /^--reinit lm_head: not a tensor outside the blocks of this model \(it has embed_tokens, norm\)$/,
  );
  assertThrows(() => inherit(trained(REF), { layers: 2, reinit: ["h.0.ln_1"] }), /it has wte, wpe, ln_f\)$/);
});
