/**
 * Per-block diagnostics: the attention statistics and power iteration against independent
 * computations, crafted tiny models (uniform attention, a block that adds nothing), the ranking,
 * the suggested n and the `deno task analyze` command.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createModel,
  type DecoderConfig,
  type GPT2Config,
  initParams,
  loadModel,
  type ParamMap,
  saveModel,
} from "@inheritune/core";
import { attentionForwardCpu, getGpu, read, Recorder, write } from "@inheritune/kernels";
import { arraySource, writeShard } from "@inheritune/data";
import {
  analyzeModel,
  attentionStats,
  type BlockDiagnostics,
  formatAnalysis,
  rankBlocks,
  residualSimilarity,
  singularValues,
  suggestLayers,
} from "@inheritune/eval";
import { assertRejects } from "../_assert.ts";
import { assertClose, runCli, withTempDir } from "../_util.ts";

const TINY: GPT2Config = {
  n_layer: 3,
  n_head: 2,
  n_embd: 16,
  vocab_size: 32,
  n_positions: 8,
  layer_norm_epsilon: 1e-5,
  tokenizer: "bytes",
};

/** Eigenvalues of a symmetric matrix by cyclic Jacobi rotations: an exact reference, no power iteration. */
function symmetricEigenvalues(m: number[][]): number[] {
  const n = m.length;
  const a = m.map((r) => [...r]);
  for (let sweep = 0; sweep < 50; sweep++) {
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        if (Math.abs(a[p][q]) < 1e-300) continue;
        const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) {
          [a[k][p], a[k][q]] = [c * a[k][p] - s * a[k][q], s * a[k][p] + c * a[k][q]];
        }
        for (let k = 0; k < n; k++) {
          [a[p][k], a[q][k]] = [c * a[p][k] - s * a[q][k], s * a[p][k] + c * a[q][k]];
        }
      }
    }
  }
  return a.map((r, i) => r[i]);
}

/** σ1² / ‖A‖_F² of `a (T,T)` from the exact eigenvalues of AᵀA. */
function exactRankOne(a: ArrayLike<number>, T: number): number {
  const ata = Array.from({ length: T }, (_, i) =>
    Array.from({ length: T }, (_, j) => {
      let s = 0;
      for (let k = 0; k < T; k++) s += a[k * T + i] * a[k * T + j];
      return s;
    }));
  const eig = symmetricEigenvalues(ata);
  return Math.max(...eig) / eig.reduce((s, v) => s + v, 0);
}

function uniformCausal(T: number): Float64Array {
  const a = new Float64Array(T * T);
  for (let t = 0; t < T; t++) for (let j = 0; j <= t; j++) a[t * T + j] = 1 / (t + 1);
  return a;
}

function mean(values: number[]): number {
  return values.reduce((s, v) => s + v, 0) / values.length;
}

Deno.test("singular values of diagonal, rectangular and dense matrices, largest first", () => {
  assertClose(
    singularValues([3, 0, 0, 0, 1, 0, 0, 0, 2], { rows: 3, cols: 3 }),
    [3, 2, 1],
    1e-12,
    "diag(3,1,2)",
  );
  assertClose(singularValues([0, 4, 0, 3, 0, 0], { rows: 2, cols: 3 }), [4, 3], 1e-12, "2x3");
  assertClose(singularValues([0, 3, 4, 0, 0, 0], { rows: 3, cols: 2 }), [4, 3], 1e-12, "3x2");
  assert.deepEqual([...singularValues([0, 0, 0, 0], { rows: 2, cols: 2 })], [0, 0]);
  // Against the test's own Jacobi on a dense matrix and a 40x40 causal pattern.
  const dense = [0.3, 0.9, 0.1, 0.5, 0.2, 0.7, 0.8, 0.4, 0.6];
  const gram = (a: ArrayLike<number>, n: number) =>
    Array.from({ length: n }, (_, i) =>
      Array.from({ length: n }, (_, j) => {
        let s = 0;
        for (let k = 0; k < n; k++) s += a[k * n + i] * a[k * n + j];
        return s;
      }));
  const want = (a: ArrayLike<number>, n: number) =>
    symmetricEigenvalues(gram(a, n)).map(Math.sqrt).sort((x, y) => y - x);
  assertClose(singularValues(dense, { rows: 3, cols: 3 }), want(dense, 3), 1e-10, "dense 3x3");
  const causal = uniformCausal(40).map((v, i) => v * (1 + 0.3 * Math.sin(i)));
  assertClose(singularValues(causal, { rows: 40, cols: 40 }), want(causal, 40), 1e-9, "40x40");
});

Deno.test("uniform causal attention: entropy log(t+1), first-token mass 1/(t+1), exact rank-one closeness", () => {
  // T=2 in closed form: AᵀA = [[1.25, .25], [.25, .25]] has top eigenvalue (1.5 + √1.25)/2; ‖A‖F² = 1.5
  assertClose(
    [attentionStats(uniformCausal(2), 2).rankOne],
    [(1.5 + Math.sqrt(1.25)) / 2 / 1.5],
    1e-9,
    "T=2",
  );
  assertClose([exactRankOne(uniformCausal(2), 2)], [(1.5 + Math.sqrt(1.25)) / 2 / 1.5], 1e-12, "Jacobi T=2");
  for (const T of [5, 16]) {
    const s = attentionStats(uniformCausal(T), T);
    const rows = Array.from({ length: T - 1 }, (_, i) => i + 1);
    assertClose([s.entropy], [mean(rows.map((t) => Math.log(t + 1)))], 1e-12, `entropy T=${T}`);
    assertClose([s.normalizedEntropy], [1], 1e-12, `normalised entropy T=${T}`);
    assertClose([s.firstTokenMass], [mean(rows.map((t) => 1 / (t + 1)))], 1e-12, `first-token mass T=${T}`);
    assertClose([s.rankOne], [exactRankOne(uniformCausal(T), T)], 1e-9, `rank-one T=${T}`);
  }
});

Deno.test("attention to the first token only is rank one with zero entropy; to itself, 1/T", () => {
  const T = 6;
  const sink = new Float64Array(T * T);
  const self = new Float64Array(T * T);
  for (let t = 0; t < T; t++) {
    sink[t * T] = 1;
    self[t * T + t] = 1;
  }
  const s = attentionStats(sink, T);
  assert.deepEqual([s.entropy, s.normalizedEntropy, s.firstTokenMass], [0, 0, 1]);
  assertClose([s.rankOne], [1], 1e-12, "sink rank-one");
  assert.equal(s.rank90, 1, "sink rank");
  const d = attentionStats(self, T);
  assert.equal(d.firstTokenMass, 0);
  assertClose([d.rankOne], [1 / T], 1e-12, "identity rank-one");
  // Every singular value of the identity is 1: 90% of T of them are needed.
  assert.equal(d.rank90, Math.ceil(0.9 * T), "identity rank");
});

Deno.test("residual similarity: identical rows cos 1, orthogonal rows angle 1/2, opposite rows angle 1", () => {
  const x = [1, 2, 3, 0, 1, 0, 2, 0];
  assert.deepEqual(residualSimilarity(x, x, 4), { cosine: 1, angularDistance: 0 });
  const r = residualSimilarity([1, 0, 0, 1], [0, 1, 0, -3], 2);
  assertClose([r.cosine, r.angularDistance], [(0 - 1) / 2, (0.5 + 1) / 2], 1e-12, "orthogonal and opposite");
});

function block(blockIndex: number, blockInfluence: number, rankOne: number[]): BlockDiagnostics {
  return {
    block: blockIndex,
    cosine: 1 - blockInfluence,
    blockInfluence,
    angularDistance: 0,
    tailDistance: 0,
    heads: rankOne.map((r, head) => ({
      head,
      entropy: 0,
      normalizedEntropy: 0,
      firstTokenMass: 0,
      rankOne: r,
      rank90: 1,
    })),
  };
}

Deno.test("ranking orders blocks by Block Influence, largest first, ties by index", () => {
  const blocks = [
    block(0, 0.5, [0]),
    block(1, 0.1, [0]),
    block(2, 0.3, [0]),
    block(3, 0.1, [0]),
    block(4, 0.7, [0]),
  ];
  assert.deepEqual(rankBlocks(blocks), [4, 0, 2, 1, 3]);
});

Deno.test("suggested n is the smallest n whose following blocks are all lazy", () => {
  const rank = (means: number[][]): BlockDiagnostics[] => means.map((r, i) => block(i, 0, r));
  assert.equal(suggestLayers(rank([[0.2, 0.3], [1, 0.9], [0.5, 0.5], [0.9, 0.94], [1, 0.98]])), 3);
  assert.equal(suggestLayers(rank([[0.95], [0.95], [0.95]])), 1, "all lazy keeps one block");
  assert.equal(suggestLayers(rank([[0.95], [0.95], [0.5]])), 3, "a busy last block keeps them all");
  assert.equal(suggestLayers(rank([[0.2], [0.6], [0.7]]), 0.55), 1, "threshold");
});

/** TINY's parameters with block 0's queries zeroed (uniform attention) and block 1 adding nothing. */
function craftedParams(): ParamMap {
  const params = initParams(TINY, 7);
  const C = TINY.n_embd;
  const w = params.get("h.0.attn.c_attn.weight")!; // (C, 3C), query columns first
  for (let i = 0; i < C; i++) w.fill(0, i * 3 * C, i * 3 * C + C);
  params.get("h.0.attn.c_attn.bias")!.fill(0, 0, C);
  for (const t of ["attn.c_proj.weight", "attn.c_proj.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"]) {
    params.get(`h.1.${t}`)!.fill(0);
  }
  return params;
}

function tokenStream(n: number): number[] {
  return Array.from({ length: n }, (_, i) => (i * 7 + 3) % TINY.vocab_size);
}

Deno.test("a model with uniform attention and an identity block: exact statistics, ranking and n", async () => {
  const T = 5;
  const a = await analyzeModel({ config: TINY, params: craftedParams() }, arraySource(tokenStream(40)), {
    windows: 3,
    T,
  });
  assert.equal(a.T, T);
  assert.equal(a.windows, 3);
  assert.equal(a.blocks.length, 3);
  const rows = [1, 2, 3, 4];
  const uniformRankOne = exactRankOne(uniformCausal(T), T);
  for (const h of a.blocks[0].heads) {
    assertClose(
      [h.entropy],
      [mean(rows.map((t) => Math.log(t + 1)))],
      1e-9,
      `block 0 head ${h.head} entropy`,
    );
    assertClose([h.normalizedEntropy], [1], 1e-9, "normalised entropy");
    assertClose([h.firstTokenMass], [mean(rows.map((t) => 1 / (t + 1)))], 1e-9, "first-token mass");
    assertClose([h.rankOne], [uniformRankOne], 1e-9, "rank-one");
  }
  const id = a.blocks[1];
  assertClose([id.cosine, id.angularDistance], [1, 0], 1e-9, "identity block cosine and angle");
  assert.ok(Math.abs(id.blockInfluence) < 1e-9, `BI ${id.blockInfluence}`);
  // block 1 adds nothing, so dropping blocks 1..2 changes as much as dropping block 2 alone
  assertClose(
    [id.tailDistance, a.blocks[2].tailDistance],
    [a.blocks[2].tailDistance, a.blocks[2].angularDistance],
    1e-9,
    "tails",
  );
  for (const b of [a.blocks[0], a.blocks[2]]) {
    assert.ok(b.blockInfluence > 1e-4, `block ${b.block} changes the residual stream`);
    assertClose([b.blockInfluence], [1 - b.cosine], 1e-12, "BI = 1 - cos");
  }
  assert.deepEqual(a.ranking, rankBlocks(a.blocks));
  assert.equal(a.ranking.at(-1), 1, "the identity block ranks last");
  assert.equal(a.suggestedLayers, suggestLayers(a.blocks));
  const text = formatAnalysis(a);
  assert.match(text, new RegExp(`^ranking: ${a.ranking.join(",")}$`, "m"));
  assert.match(text, new RegExp(`^suggested n: ${a.suggestedLayers} `, "m"));
});

Deno.test("analysis of Gemma 3 reads each block's attention with its head size, window and score scale", async () => {
  const model = await loadModel(new URL("../fixtures/gemma3_text_tiny", import.meta.url).pathname);
  const config = model.config as DecoderConfig;
  const T = 8, tokens = tokenStream(T);
  const a = await analyzeModel(model, arraySource(tokens), { windows: 1, T });
  // The blocks' qkv from the model itself; the fixture's attention spelled out: head size 256,
  // scores × 64^-½, blocks 0 and 2 see the last 4 positions.
  const gpu = await getGpu();
  const net = createModel(gpu, config, model.params, { B: 1, T });
  write(gpu, net.tokens, Uint32Array.from(tokens));
  const rec = new Recorder(gpu);
  net.recordForward(rec);
  rec.submit();
  for (const [l, window] of [[0, 4], [1, 0], [2, 4]]) {
    const qkv = await read(gpu, net.blockActivations(l).qkv);
    const { att } = attentionForwardCpu(qkv, { B: 1, T, C: 512, NH: 2, NKV: 1, window, scale: 0.125 });
    for (const h of [0, 1]) {
      const want = attentionStats(att.subarray(h * T * T, (h + 1) * T * T), T);
      const got = a.blocks[l].heads[h];
      assertClose([got.entropy, got.firstTokenMass], [want.entropy, want.firstTokenMass], 1e-9, `block ${l}`);
    }
    // Past the window, the first token gets nothing.
    if (window) assert.ok(a.blocks[l].heads[0].firstTokenMass < 3 / (T - 1));
  }
  net.destroy();
});

Deno.test("analysis takes fewer windows from short data and rejects data shorter than one window", async () => {
  const model = { config: TINY, params: initParams(TINY, 1) };
  const a = await analyzeModel(model, arraySource(tokenStream(12)), { windows: 100, T: 5 });
  assert.equal(a.windows, 2);
  await assertRejects(() => analyzeModel(model, arraySource(tokenStream(4)), { T: 5 }), /at least 5 tokens/);
  await assertRejects(() => analyzeModel(model, arraySource(tokenStream(40)), { T: 9 }), /\[2, 8\]/);
});

Deno.test("deno task analyze prints the table, n, the ranking line and JSON; bad input exits 2", async () => {
  await withTempDir(async (dir) => {
    const model = join(dir, "model");
    await saveModel(model, { config: TINY, params: craftedParams() });
    await writeShard(join(dir, "val_000000.bin"), tokenStream(64));
    const data = join(dir, "val_000000.bin");
    const ok = await runCli([
      "analyze",
      "--model",
      model,
      "--data",
      data,
      "--ctx",
      "6",
      "--windows",
      "2",
      "--json",
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const lines = ok.stdout.trim().split("\n");
    const json = JSON.parse(lines.at(-1)!);
    assert.deepEqual([json.T, json.windows, json.blocks.length], [6, 2, 3]);
    assert.deepEqual([...json.ranking].sort(), [0, 1, 2]);
    assert.ok(lines.includes(`ranking: ${json.ranking.join(",")}`), ok.stdout);
    assert.match(ok.stdout, /^suggested n: \d/m);

    const missing = await runCli(["analyze", "--model", join(dir, "nope"), "--data", data]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^inheritune analyze: .*nope: cannot read/);
    assert.equal(missing.stderr.trim().split("\n").length, 1);
    const badCtx = await runCli(["analyze", "--model", model, "--data", data, "--ctx", "1"]);
    assert.equal(badCtx.code, 2);
    assert.match(badCtx.stderr, /^inheritune analyze: --ctx must be ≥ 2, got 1\n$/);
  });
});
