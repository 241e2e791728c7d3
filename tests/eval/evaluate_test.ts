/** Bits per byte, re-tokenised validation text, task metrics and the report tables. */
import assert from "node:assert/strict";
import { getGpu } from "@inheritune/kernels";
import { createModel, loadModel } from "@inheritune/core";
import { arraySource, loadTokenizer } from "@inheritune/data";
import {
  coveredBytes,
  encodePair,
  evaluateModel,
  evaluateText,
  formatMarkdown,
  formatText,
  parseTaskJsonl,
  reportTable,
  retokenize,
  scoreRequests,
} from "@inheritune/eval";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;

Deno.test("covered bytes are exact for byte-level BPE tokens holding parts of characters, end-of-text covering none", async () => {
  const gpt2 = await loadTokenizer("gpt2");
  const docs = ["naïve café 日本語の文章 ∑ ok. ".repeat(50), "Ünïcödé ✓ 🙂 end", "語"];
  const ids = docs.flatMap((d) => [gpt2.eotToken!, ...gpt2.encode(d)]);
  assert.ok(gpt2.encode("語").length > 1, "some tokens hold part of a character");
  const expected = docs.reduce((s, d) => s + new TextEncoder().encode(d).length, 0);
  assert.equal(coveredBytes(arraySource(ids), gpt2, { start: 0, count: ids.length }), expected);
  const bytes = await loadTokenizer("bytes");
  assert.equal(coveredBytes(arraySource([104, 0xc3, 0xa9, 33]), bytes, { start: 1, count: 2 }), 2);
});

Deno.test("bits per byte is the summed loss over the covered bytes over ln 2 (one byte per token here)", async () => {
  const gpu = await getGpu();
  const { config, params } = await loadModel(FIXTURES + "gpt2_tiny");
  const tokens = Array.from({ length: 200 }, (_, i) => 32 + ((i * 7) % 35)); // printable ASCII below V=67
  const model = createModel(gpu, config, params, { B: 3, T: 16 });
  const r = await evaluateText(model, arraySource(tokens), { tokenizer: await loadTokenizer("bytes") });
  const ids = await evaluateText(model, arraySource(tokens), {});
  model.destroy();
  assert.equal(r.tokens, 12 * 16);
  assert.equal(r.bytes, r.tokens);
  assert.ok(Math.abs(r.bitsPerByte! - r.loss / Math.LN2) < 1e-9);
  // Without a tokenizer the ids have no bytes: the same loss, no bits per byte.
  assert.deepEqual(ids, { loss: r.loss, perplexity: r.perplexity, tokens: r.tokens });
});

Deno.test("validation text in another tokenizer is re-encoded with the model's, documents kept apart", async () => {
  const gpt2 = await loadTokenizer("gpt2");
  const bytes = await loadTokenizer("bytes");
  const ids = [gpt2.eotToken!, ...gpt2.encode("Hello wörld."), gpt2.eotToken!, ...gpt2.encode("Bye.")];
  const asBytes = retokenize(arraySource(ids), { from: gpt2, to: bytes });
  assert.equal(bytes.decode(asBytes.read(0, asBytes.length)), "Hello wörld.Bye.");
  const back = retokenize(asBytes, { from: bytes, to: gpt2 });
  assert.equal(gpt2.decode(back.read(0, back.length)), "Hello wörld.Bye.");
  const again = retokenize(arraySource(ids), { from: gpt2, to: gpt2 });
  assert.deepEqual([...again.read(0, again.length)], ids);
});

// Characters below the fixture's vocabulary of 67 bytes: space, punctuation, digits, A and B.
const PLAIN = [
  { context: "012", choices: ["3", "45", "6"], gold: 0 },
  { context: "AB", choices: [" 12", "!"], gold: 1 },
  { context: "7", choices: ["89", "98", "88", "99"], gold: 3 },
  { context: "", choices: ["1"], gold: 0 },
  { context: "x", choices: ["1", "2"], gold: 0 },
].map((o) => JSON.stringify(o)).join("\n");

Deno.test("a model's report holds text metrics and each task's accuracy from its candidates' log-likelihoods", async () => {
  const gpu = await getGpu();
  const checkpoint = await loadModel(FIXTURES + "gpt2_tiny");
  const bytes = await loadTokenizer("bytes");
  const plain = parseTaskJsonl(PLAIN, "plain").task;
  const lambada = parseTaskJsonl([`{"text": "1 2 3 4"}`, `{"text": "AB BA AB BA"}`].join("\n"), "lam").task;
  const skipped: string[] = [];
  const report = await evaluateModel({ name: "tiny", ...checkpoint }, {
    text: { source: arraySource(Array.from({ length: 100 }, (_, i) => 40 + (i % 20))), tokenizer: bytes },
    tasks: [plain, lambada],
    gpu,
    onSkip: (task, problems) => skipped.push(...problems.map((p) => `${task}:${p.line}:${p.message}`)),
  });
  assert.equal(report.params, [...checkpoint.params.values()].reduce((s, p) => s + p.length, 0));
  assert.equal(report.text!.tokens, 6 * 16);
  assert.deepEqual(skipped, [
    "plain:4:a candidate has no context and tokenizer bytes no end-of-text token",
    "plain:5:a token id is not below the model's vocabulary size 67",
  ]);
  const [p, l] = report.tasks;
  assert.equal(p.items, 3);
  assert.equal(p.skipped, 2);

  // The same choice by hand: argmax of log p and of log p per byte.
  const model = createModel(gpu, checkpoint.config, checkpoint.params, { B: 4, T: 16 });
  const items = plain.items.slice(0, 3);
  const scores = await scoreRequests(
    model,
    items.flatMap((it) => it.candidates.map((c) => encodePair(bytes, c)!)),
  );
  model.destroy();
  let k = 0, acc = 0, accNorm = 0;
  for (const it of items) {
    const lp = it.candidates.map((_, j) => scores[k + j].logprob);
    const norm = it.candidates.map((c, j) => lp[j] / c.continuation.length);
    k += lp.length;
    if (lp.indexOf(Math.max(...lp)) === it.gold) acc++;
    if (norm.indexOf(Math.max(...norm)) === it.gold) accNorm++;
  }
  assert.equal(p.acc, acc / 3);
  assert.equal(p.acc_norm, accNorm / 3);
  assert.equal(l.kind, "final_word");
  assert.equal(l.items, 2);
  assert.ok(l.perplexity! > 1 && l.acc >= 0 && l.acc <= 1);

  const table = reportTable([report, { ...report, model: "again", text: undefined, tasks: [] }]);
  assert.deepEqual(table.header, [
    "model",
    "params",
    "val loss",
    "ppl",
    "bpb",
    "plain acc",
    "plain acc_norm",
    "lam acc",
    "lam ppl",
  ]);
  assert.deepEqual(table.rows[1].slice(2), ["-", "-", "-", "-", "-", "-", "-"]);
  const text = formatText(table).split("\n");
  assert.equal(text.length, 4);
  assert.ok(text[2].startsWith("tiny "));
  const md = formatMarkdown(table).split("\n");
  assert.equal(md[1], "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  assert.match(md[2], /^\| tiny \| 2[0-9.]+K \| \d\.\d{4} \|/);
});
