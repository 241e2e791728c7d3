/**
 * The log-likelihood scorer against the model's own forward pass and against PyTorch's logits of
 * the tiny fixture model (`scripts/gpt2_fixtures.py`: L=2, C=32, V=67, maxT=16, tokens (3,16)).
 */
import assert from "node:assert/strict";
import { createView, getGpu, IGNORE_INDEX, read, Recorder, write } from "@inheritune/kernels";
import { createModel, loadModel, readSafetensors } from "@inheritune/core";
import { packRequest, type ScoreRequest, scoreRequests } from "@inheritune/eval";
import { assertClose } from "../_util.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;

async function fixture() {
  const model = await loadModel(FIXTURES + "gpt2_tiny");
  const { tensors, metadata } = await readSafetensors(FIXTURES + "gpt2_tiny_expected.safetensors");
  const B = Number(metadata.B), T = Number(metadata.T);
  const tokens = Array.from(tensors.get("tokens")!.data);
  const rows = Array.from({ length: B }, (_, b) => tokens.slice(b * T, (b + 1) * T));
  return { ...model, rows, logits: tensors.get("logits")!.data, B, T, V: model.config.vocab_size };
}

/** log p(token at `pos` | tokens before) of row `b` from a (B,T,V) logit array, in f64. */
function logprobFrom(
  logits: ArrayLike<number>,
  shape: { T: number; V: number },
  b: number,
  pos: number,
  token: number,
): number {
  const { T, V } = shape;
  const at = (b * T + pos - 1) * V;
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[at + v]);
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(logits[at + v] - max);
  return logits[at + token] - max - Math.log(sum);
}

/** (row, context length, continuation length) splits of the fixture rows. */
const SPLITS: [number, number, number][] = [[0, 1, 1], [0, 5, 3], [1, 10, 6], [2, 15, 1], [2, 1, 15], [
  1,
  7,
  9,
]];

Deno.test("a continuation's log-likelihood is the sum of the forward pass's per-token log-probabilities and PyTorch's within 1e-4", async () => {
  const gpu = await getGpu();
  const fx = await fixture();
  const requests: ScoreRequest[] = SPLITS.map(([b, k, m]) => ({
    context: fx.rows[b].slice(0, k),
    continuation: fx.rows[b].slice(k, k + m),
  }));
  const torch = SPLITS.map(([b, k, m]) => {
    let s = 0;
    for (let p = k; p < k + m; p++) s += logprobFrom(fx.logits, fx, b, p, fx.rows[b][p]);
    return s;
  });

  // Our forward pass over the whole fixture rows, logits read back and log-softmaxed on the CPU.
  const full = createModel(gpu, fx.config, fx.params, { B: fx.B, T: fx.T });
  write(gpu, full.tokens, Uint32Array.from(fx.rows.flat()));
  write(gpu, full.targets, new Uint32Array(fx.B * fx.T).fill(IGNORE_INDEX));
  const logits = createView(gpu, fx.B * fx.T * fx.V);
  const rec = new Recorder(gpu);
  full.recordForward(rec);
  full.recordLogits(rec, logits);
  rec.submit();
  const ours = await read(gpu, logits);
  full.destroy();
  const forward = SPLITS.map(([b, k, m]) => {
    let s = 0;
    for (let p = k; p < k + m; p++) s += logprobFrom(ours, fx, b, p, fx.rows[b][p]);
    return s;
  });

  // B=4 with 6 requests: two batches, the second padded with ignored rows.
  const model = createModel(gpu, fx.config, fx.params, { B: 4, T: fx.T });
  const scores = await scoreRequests(model, requests, { greedy: true });
  model.destroy();
  const got = scores.map((s) => s.logprob);
  assertClose(got, forward, 1e-5, "scorer vs forward-pass log-probabilities");
  assertClose(got, torch, 1e-4, "scorer vs PyTorch log-probabilities");
  assert.ok(scores.some((s) => !s.greedy), "a split that greedy decoding would not produce");

  // The greedy flag is true exactly when the continuation is PyTorch's argmax.
  const at = 4 * fx.V;
  const best = fx.logits.subarray(at, at + fx.V).reduce((bi, x, v, row) => (x > row[bi] ? v : bi), 0);
  const second = (best + 1) % fx.V;
  const again = createModel(gpu, fx.config, fx.params, { B: 2, T: fx.T });
  const [top, other] = await scoreRequests(again, [
    { context: fx.rows[0].slice(0, 5), continuation: [best] },
    { context: fx.rows[0].slice(0, 5), continuation: [second] },
  ], { greedy: true });
  again.destroy();
  assert.equal(top.greedy, true);
  assert.equal(other.greedy, false);
  SPLITS.forEach(([b, k, m], i) => {
    let greedy = true;
    for (let p = k; p < k + m; p++) {
      const at = (b * fx.T + p - 1) * fx.V;
      const row = fx.logits.subarray(at, at + fx.V);
      if (row.some((x, v) => v !== fx.rows[b][p] && x > row[fx.rows[b][p]])) greedy = false;
    }
    assert.equal(scores[i].greedy, greedy, `greedy flag of split ${i}`);
  });
});

Deno.test("a context longer than T is truncated from the left, keeping every continuation token", async () => {
  const gpu = await getGpu();
  const fx = await fixture();
  const seq = [...fx.rows[0], ...fx.rows[1]]; // 32 tokens, twice the model's context
  const model = createModel(gpu, fx.config, fx.params, { B: 2, T: 8 });
  const long = { context: seq.slice(0, 28), continuation: seq.slice(28, 31) };
  const cut = { context: seq.slice(22, 28), continuation: seq.slice(28, 31) }; // the last T+1 = 9 tokens
  const [a, b] = await scoreRequests(model, [long, cut]);
  model.destroy();
  assert.equal(a.logprob, b.logprob);
  assert.ok(Number.isFinite(a.logprob) && a.logprob < 0);
});

Deno.test("packRequest puts inputs and shifted targets in the row, ignoring context and padding", () => {
  const T = 6;
  const tokens = new Uint32Array(2 * T).fill(9);
  const targets = new Uint32Array(2 * T).fill(9);
  packRequest({ context: [1, 2], continuation: [3, 4] }, { tokens, targets, b: 1, T });
  const I = IGNORE_INDEX;
  assert.deepEqual([...tokens.subarray(T)], [1, 2, 3, 0, 0, 0]);
  assert.deepEqual([...targets.subarray(T)], [I, 3, 4, I, I, I]);
  assert.deepEqual([...tokens.subarray(0, T)], [9, 9, 9, 9, 9, 9], "row 0 untouched");
  packRequest({ context: [1, 2, 3, 4, 5, 6, 7], continuation: [8, 9] }, { tokens, targets, b: 0, T });
  assert.deepEqual([...tokens.subarray(0, T)], [3, 4, 5, 6, 7, 8]);
  assert.deepEqual([...targets.subarray(0, T)], [I, I, I, I, 8, 9]);
  assert.throws(
    () => packRequest({ context: [], continuation: [1] }, { tokens, targets, b: 0, T }),
    /context/,
  );
  assert.throws(
    () => packRequest({ context: [1], continuation: [1, 2, 3, 4, 5, 6, 7] }, { tokens, targets, b: 0, T }),
    /1\.\.6/,
  );
});
