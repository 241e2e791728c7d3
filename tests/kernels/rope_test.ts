import assert from "node:assert/strict";
import { assertThrows } from "../_assert.ts";
import {
  createView,
  getGpu,
  type Operands,
  read,
  Recorder,
  ropeBackward,
  ropeBackwardCpu,
  ropeForward,
  ropeForwardCpu,
  ropeInvFreq,
  ropeLayerTables,
  type RopeScaling,
  ropeScaling,
  RopeScalingError,
  type RopeShape,
  type RopeSpec,
  ropeTables,
  upload,
} from "@inheritune/kernels";
import { assertClose, maxRelError, numericGrad, rand } from "../_util.ts";

// [B, T, NH, NKV, hs]: multi-head, grouped and multi-query, head sizes 2 to 64.
const SHAPES: [number, number, number, number, number][] = [
  [1, 1, 1, 1, 2],
  [2, 5, 3, 3, 6],
  [2, 7, 4, 2, 8],
  [1, 33, 8, 1, 16],
  [2, 16, 2, 2, 64],
];

function inputs(shape: RopeShape, seed: number) {
  const { BT, NH, NKV, hs } = shape;
  return { q: rand(BT * NH * hs, seed), k: rand(BT * NKV * hs, seed + 1), v: rand(BT * NKV * hs, seed + 2) };
}

Deno.test("rope tables hold cos and sin of t·θ^(-2d/hs)", () => {
  const { cos, sin } = ropeTables({ hs: 8, maxT: 5, theta: 10000 });
  for (let t = 0; t < 5; t++) {
    for (let d = 0; d < 4; d++) {
      const angle = t * 10000 ** (-2 * d / 8);
      assertClose(
        [cos[t * 4 + d], sin[t * 4 + d]],
        [Math.cos(angle), Math.sin(angle)],
        1e-6,
        `t=${t} d=${d}`,
      );
    }
  }
});

// Head sizes that are a multiple of 8 take the quad kernels, from buffers or textures; others the pair kernels.
const CASES: { s: [number, number, number, number, number]; operands?: Operands }[] = SHAPES.flatMap((s) =>
  s[4] % 8 === 0 ? [{ s, operands: "buffer" as const }, { s, operands: "texture" as const }] : [{ s }]
);

Deno.test("rope forward packs rotated q, rotated k and v, and backward unrotates, matching CPU", async () => {
  const gpu = await getGpu();
  for (const { s: [B, T, NH, NKV, hs], operands } of CASES) {
    const shape = { BT: B * T, T, NH, NKV, hs, operands };
    const tables = ropeTables({ hs, maxT: T, theta: 10000 });
    const x = inputs(shape, B * 7 + T);
    const W = (NH + 2 * NKV) * hs;
    const dqkv = rand(B * T * W, T + hs);
    const views = {
      qkv: createView(gpu, B * T * W),
      q: upload(gpu, x.q),
      k: upload(gpu, x.k),
      v: upload(gpu, x.v),
      cos: upload(gpu, tables.cos),
      sin: upload(gpu, tables.sin),
    };
    const grads = {
      dq: upload(gpu, rand(x.q.length, 1, 50)),
      dk: upload(gpu, rand(x.k.length, 2, 50)),
      dv: upload(gpu, rand(x.v.length, 3, 50)),
      dqkv: upload(gpu, dqkv),
    };
    const rec = new Recorder(gpu);
    ropeForward(rec, { ...views, ...shape });
    ropeBackward(rec, { ...grads, cos: views.cos, sin: views.sin, ...shape });
    rec.submit();
    const what = `B=${B} T=${T} NH=${NH} NKV=${NKV} hs=${hs} ${operands ?? "pairs"}`;
    assertClose(await read(gpu, views.qkv), ropeForwardCpu(x, { ...shape, ...tables }), 1e-4, `qkv ${what}`);
    const want = ropeBackwardCpu(dqkv, { ...shape, ...tables });
    assertClose(await read(gpu, grads.dq), want.dq, 1e-4, `dq ${what}`);
    assertClose(await read(gpu, grads.dk), want.dk, 1e-4, `dk ${what}`);
    assertClose(await read(gpu, grads.dv), want.dv, 1e-4, `dv ${what}`);
  }
});

Deno.test("rope backward CPU reference matches finite differences", () => {
  const shape = { BT: 6, T: 3, NH: 4, NKV: 2, hs: 6 };
  const tables = ropeTables({ hs: 6, maxT: 3, theta: 500 });
  const x = inputs(shape, 9);
  const w = rand(6 * (4 + 4) * 6, 10);
  const got = ropeBackwardCpu(w, { ...shape, ...tables });
  const f = (part: "q" | "k" | "v") => (y: Float64Array) =>
    ropeForwardCpu({ ...x, [part]: y }, { ...shape, ...tables });
  assertClose(got.dq, numericGrad(f("q"), x.q, w), 1e-6, "dq");
  assertClose(got.dk, numericGrad(f("k"), x.k, w), 1e-6, "dk");
  assertClose(got.dv, numericGrad(f("v"), x.v, w), 1e-6, "dv");
});

Deno.test("rope scores depend only on the distance between positions, and position 0 is unrotated", () => {
  // One head; q and k the same vector at every position: q_t·k_s after RoPE is a function of t − s.
  const T = 6, hs = 8;
  const tables = ropeTables({ hs, maxT: T, theta: 100 });
  const qv = rand(hs, 1), kv = rand(hs, 2);
  const q = new Float32Array(T * hs), k = new Float32Array(T * hs);
  for (let t = 0; t < T; t++) {
    q.set(qv, t * hs);
    k.set(kv, t * hs);
  }
  const qkv = ropeForwardCpu({ q, k, v: new Float32Array(T * hs) }, {
    BT: T,
    T,
    NH: 1,
    NKV: 1,
    hs,
    ...tables,
  });
  const score = (t: number, s: number) => {
    let d = 0;
    for (let i = 0; i < hs; i++) d += qkv[t * 3 * hs + i] * qkv[s * 3 * hs + hs + i];
    return d;
  };
  for (const [t, s] of [[3, 1], [5, 3], [2, 0]]) {
    assertClose([score(t, s)], [score(4, 2)], 1e-6, `score(${t},${s})`);
  }
  assert.deepEqual([...qkv.subarray(0, hs)].map(Math.fround), [...qv]);
});

Deno.test("rope rejects odd head sizes, ungrouped heads and short buffers", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const v = (n: number) => createView(gpu, n);
  const ok = {
    qkv: v(2 * 12),
    q: v(2 * 4),
    k: v(2 * 4),
    v: v(2 * 4),
    cos: v(4),
    sin: v(4),
    BT: 2,
    T: 2,
    NH: 1,
    NKV: 1,
    hs: 4,
  };
  assertThrows(() => ropeForward(rec, { ...ok, hs: 3 }), /head size 3 is not even/);
  assertThrows(() => ropeForward(rec, { ...ok, NH: 3, NKV: 2 }), /NKV=2 does not divide NH=3/);
  assertThrows(
    () => ropeForward(rec, { ...ok, sin: v(3) }),
    /rope sin table \(T=2, hs=4\): needs 4 elements, buffer has 3/,
  );
  assertThrows(() => ropeTables({ hs: 5, maxT: 2, theta: 1e4 }), /head size 5 is not even/);
  assert.equal(rec.length, 0, "a rejected call recorded a dispatch");
});

// ---------------------------------------------------------------------------------------------
// Frequency scaling and per-layer bases, against transformers (scripts/rope_fixtures.py)

interface RopeCase {
  model_type: string;
  hs: number;
  T: number;
  rope_theta: number;
  rope_scaling: unknown;
  rope_parameters: Record<string, unknown>;
  inv_freq: number[];
  cos: number[];
  sin: number[];
}

const FIXTURE: { cases: Record<string, RopeCase>; gemma3_layer_types: string[] } = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/rope_tables.json", import.meta.url)),
);

/** A case's RoPE as the decoder reads it from the v4 keys (`rope_theta`, `rope_scaling`). */
function specOf(c: RopeCase, name: string): RopeSpec {
  return { theta: c.rope_theta, scaling: ropeScaling(c.rope_scaling, { what: `${name} rope_scaling` }) };
}

/** Largest |a - b| over two tables. */
function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

for (const [name, c] of Object.entries(FIXTURE.cases)) {
  Deno.test(`rope tables equal transformers' (${name}: ${JSON.stringify(c.rope_parameters)})`, () => {
    const spec = specOf(c, name);
    const v5 = ropeScaling(c.rope_parameters, { what: `${name} rope_parameters` });
    assert.deepEqual(v5, spec.scaling ?? { rope_type: "default" }, "v4 and v5 keys give one scaling");
    // f32 step by step as PyTorch (bit-equal here; 2 ulp allowed for powf rounding differently from Math.pow),
    // cos and sin within 2 ulp of 1 (PyTorch takes them in f32).
    assertClose(ropeInvFreq(c.hs, spec), c.inv_freq, 2.5e-7, `${name} inv_freq`);
    const t = ropeTables({ hs: c.hs, maxT: c.T, ...spec });
    assert.ok(maxAbs(t.cos, c.cos) <= 2.5e-7, `${name} cos: max |error| ${maxAbs(t.cos, c.cos)}`);
    assert.ok(maxAbs(t.sin, c.sin) <= 2.5e-7, `${name} sin: max |error| ${maxAbs(t.sin, c.sin)}`);
    if (spec.scaling?.rope_type !== "default") {
      // The fixture is not plain RoPE in disguise: the scaling moves some frequency.
      const plain = ropeInvFreq(c.hs, { theta: c.rope_theta });
      assert.ok(maxRelError(plain, c.inv_freq) > 0.1, `${name}: the scaling changes no frequency`);
    }
  });
}

Deno.test("rope llama3 scaling keeps high frequencies, divides low ones by the factor and smooths between", () => {
  const c = FIXTURE.cases.llama3_small;
  const plain = ropeInvFreq(c.hs, { theta: c.rope_theta });
  const scaled = ropeInvFreq(c.hs, specOf(c, "llama3_small"));
  const bands = Array.from(plain, (p) => {
    const wavelen = (2 * Math.PI) / p;
    return wavelen < 64 / 4 ? "kept" : wavelen > 64 / 1 ? "divided" : "smoothed";
  });
  assert.deepEqual(new Set(bands), new Set(["kept", "divided", "smoothed"]), "the fixture covers every band");
  bands.forEach((band, d) => {
    const ratio = scaled[d] / plain[d];
    if (band === "kept") assert.equal(ratio, 1, `d=${d}`);
    else if (band === "divided") assertClose([ratio], [1 / 8], 1e-6, `d=${d}`);
    else assert.ok(ratio < 1 && ratio > 1 / 8, `d=${d}: ratio ${ratio}`);
  });
});

Deno.test("rope freqFactors divide each frequency: llama.cpp's rope_freqs of Llama 3 give its scaled frequencies", () => {
  const c = FIXTURE.cases.llama3_small;
  const s = specOf(c, "llama3_small").scaling as Extract<RopeScaling, { rope_type: "llama3" }>;
  const plain = ropeInvFreq(c.hs, { theta: c.rope_theta });
  // llama.cpp's converter (convert_hf_to_gguf.py, LlamaModel.generate_extra_tensors), in float64.
  const factors = Array.from(plain, (p) => {
    const wavelen = (2 * Math.PI) / p;
    const old = s.original_max_position_embeddings;
    if (wavelen < old / s.high_freq_factor) return 1;
    if (wavelen > old / s.low_freq_factor) return s.factor;
    const smooth = (old / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    return 1 / ((1 - smooth) / s.factor + smooth);
  });
  const divided = ropeInvFreq(c.hs, { theta: c.rope_theta, freqFactors: factors });
  assertClose(divided, c.inv_freq, 5e-7, "freqFactors vs transformers' llama3 inv_freq");
  assert.deepEqual(divided, plain.map((p, d) => Math.fround(p / Math.fround(factors[d]))));
  const { tables } = ropeLayerTables(
    [{ theta: c.rope_theta }, { theta: c.rope_theta, freqFactors: factors }],
    {
      hs: c.hs,
      maxT: c.T,
    },
  );
  assert.equal(tables.length, 2, "factors make tables of their own");
  assertThrows(
    () => ropeInvFreq(c.hs, { theta: 1e4, freqFactors: [1, 2] }),
    new RegExp(`rope: freqFactors must be ${c.hs / 2} positive numbers, got \\[1,2\\]`),
  );
});

Deno.test("rope layer tables: each Gemma 3 layer gets its own base's tables, one pair per distinct base", () => {
  const types = FIXTURE.gemma3_layer_types;
  const specs = types.map((t) => specOf(FIXTURE.cases[`gemma3_${t}`], t));
  const { tables, layer } = ropeLayerTables(specs, { hs: 16, maxT: 16 });
  assert.equal(tables.length, 2);
  assert.ok(types.includes("full_attention") && types.includes("sliding_attention"));
  types.forEach((t, l) => {
    const want = FIXTURE.cases[`gemma3_${t}`];
    assert.ok(maxAbs(tables[layer[l]].cos, want.cos) <= 2.5e-7, `layer ${l} (${t}) cos`);
    assert.ok(maxAbs(tables[layer[l]].sin, want.sin) <= 2.5e-7, `layer ${l} (${t}) sin`);
    assert.equal(layer[l], layer[types.indexOf(t)], `layer ${l} shares the first ${t} layer's tables`);
  });
});

Deno.test("rope scaling reads v4 and v5 objects and refuses unknown types, keys and bad fields in one line", () => {
  const what = "config.json rope_scaling";
  assert.deepEqual(ropeScaling(null, { what }), { rope_type: "default" });
  assert.deepEqual(ropeScaling({}, { what }), { rope_type: "default" });
  assert.deepEqual(ropeScaling({ type: "linear", factor: 2 }, { what }), { rope_type: "linear", factor: 2 });
  assert.deepEqual(
    ropeScaling({ rope_type: "default", rope_theta: 1e6, partial_rotary_factor: 1 }, { what }),
    { rope_type: "default" },
  );
  const llama3 = { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4 };
  assert.deepEqual(ropeScaling(llama3, { what, max_position_embeddings: 8192 }), {
    ...llama3,
    original_max_position_embeddings: 8192,
  });
  const refused: [unknown, RegExp][] = [
    [
      { rope_type: "yarn", factor: 4 },
      /^config\.json rope_scaling: rope_type "yarn" is not supported \(default, linear, llama3\)$/,
    ],
    [{ type: "dynamic", factor: 2 }, /rope_type "dynamic" is not supported/],
    [
      { rope_type: "linear", factor: 2, beta_fast: 32 },
      /key beta_fast is not understood for rope_type linear/,
    ],
    [{ rope_type: "default", partial_rotary_factor: 0.5 }, /key partial_rotary_factor is not understood/],
    [{ rope_type: "linear" }, /linear needs factor a positive number, got undefined/],
    [{ rope_type: "linear", factor: -1 }, /linear needs factor a positive number, got -1/],
    [llama3, /llama3 needs original_max_position_embeddings a positive number/],
    [
      { ...llama3, original_max_position_embeddings: 64, high_freq_factor: 1 },
      /high_freq_factor > low_freq_factor/,
    ],
    ["linear", /expected an object, got "linear"/],
  ];
  for (const [value, message] of refused) {
    assertThrows(() => ropeScaling(value, { what }), message);
    try {
      ropeScaling(value, { what });
    } catch (e) {
      assert.ok(e instanceof RopeScalingError && !e.message.includes("\n"), `${JSON.stringify(value)}: ${e}`);
    }
  }
  // The kernels' own entry point refuses a type that bypassed the reader.
  const yarn = { rope_type: "yarn" } as unknown as RopeSpec["scaling"];
  assertThrows(
    () => ropeTables({ hs: 4, maxT: 2, theta: 1e4, scaling: yarn }),
    /rope_type "yarn" is not supported/,
  );
});
