/**
 * `deno task eval` end to end: two tiny models on a prepared bytes dataset and the built-in cloze
 * task; a model without a tokenizer on a bare shard of ids.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createModel,
  initParams,
  loadModel,
  saveModel,
  validateConfig,
  validationLoss,
} from "@inheritune/core";
import { getGpu } from "@inheritune/kernels";
import { arraySource, prepare, writeShard } from "@inheritune/data";
import { parseTaskJsonl } from "@inheritune/eval";
import { main } from "../../cli/eval.ts";
import { rand, withTempDir } from "../_util.ts";
import { FIXTURES } from "../core/_fixtures.ts";

const TEXT = Array.from(
  { length: 12 },
  (_, d) =>
    Array.from(
      { length: 5 },
      (_, s) => `Story ${d} line ${s} tells of a ${["red", "blue", "green"][s % 3]} boat.`,
    )
      .join(" "),
).join("\n<|endoftext|>\n");

/** Runs the command and returns what it printed on stdout, line by line; stderr lines go to `notes`. */
async function run(args: string[], notes: string[] = []): Promise<string[]> {
  const lines: string[] = [];
  const log = console.log, error = console.error;
  console.log = (...a: unknown[]) => lines.push(a.join(" "));
  console.error = (...a: unknown[]) => notes.push(a.join(" "));
  try {
    await main(args);
  } finally {
    console.log = log;
    console.error = error;
  }
  return lines.flatMap((l) => l.split("\n"));
}

Deno.test("eval compares models in one table, as JSON or Markdown, and writes the cloze set it scores", async () => {
  await withTempDir(async (dir) => {
    const input = join(dir, "text.txt");
    await Deno.writeTextFile(input, TEXT);
    const data = join(dir, "data");
    await prepare({ inputs: [input], out: data, tokenizer: "bytes", valFraction: 0.5 });
    const models = [1, 2].map((n) => join(dir, `m${n}`));
    for (const [i, path] of models.entries()) {
      const config = validateConfig({
        n_layer: i + 1,
        n_head: 2,
        n_embd: 16,
        vocab_size: 256,
        n_positions: 64,
        layer_norm_epsilon: 1e-5,
        tokenizer: "bytes",
      });
      await saveModel(path, { config, params: initParams(config, 5 + i) });
    }
    const common = ["--data", data, "--ctx", "64", "--cloze-items", "8", "--max-tokens", "256"];

    const one = await run(["--model", models[0], ...common]);
    const last = JSON.parse(one.at(-1)!);
    assert.deepEqual(Object.keys(last), ["loss", "perplexity", "tokens", "bytes", "bpb", "params", "tasks"]);
    assert.equal(last.tokens, 256);
    assert.equal(last.bytes, 256);
    assert.ok(Math.abs(last.bpb - last.loss / Math.LN2) < 1e-9);
    assert.equal(last.tasks.cloze.items, 8);
    assert.match(one[0], /^model +params +val loss +ppl +bpb +cloze acc +cloze acc_norm$/);

    const both = await run(["--model", models[0], "--model", models[1], ...common, "--json"]);
    const reports = JSON.parse(both.join("\n"));
    assert.deepEqual(reports.map((r: { model: string }) => r.model), models);
    assert.equal(reports[0].text.loss, last.loss, "the same numbers as the single-model run");
    assert.equal(reports[1].config.n_layer, 2);

    const cloze = join(dir, "cloze.jsonl");
    const md = await run([
      "--model",
      models[0],
      "--model",
      models[1],
      ...common,
      "--markdown",
      "--write-cloze",
      cloze,
    ]);
    assert.equal(md.length, 4);
    assert.match(md[0], /^\| model \| params \| val loss \| ppl \| bpb \| cloze acc \| cloze acc_norm \|$/);
    const written = parseTaskJsonl(await Deno.readTextFile(cloze), "cloze");
    assert.equal(written.task.items.length, 8);
    assert.deepEqual(written.problems, []);

    // The written file scores as the built-in task does.
    const fromFile = await run(["--model", models[0], ...common, "--tasks", cloze]);
    assert.deepEqual(JSON.parse(fromFile.at(-1)!).tasks.cloze, last.tasks.cloze);

    await assert.rejects(run(["--data", data]), /--model is required/);
    await assert.rejects(run(["--model", models[0], "--tasks", "cloze"]), /built from --data/);
    await assert.rejects(
      run(["--model", models[0], "--data", data, "--ctx", "65"]),
      /exceeds .* n_positions 64/,
    );
  });
});

Deno.test("a default task the model cannot score is skipped with a note; an asked-for one still fails", async () => {
  await withTempDir(async (dir) => {
    const input = join(dir, "text.txt");
    await Deno.writeTextFile(input, TEXT);
    const data = join(dir, "data");
    await prepare({ inputs: [input], out: data, tokenizer: "bytes", valFraction: 0.5 });
    // A context of 8 bytes holds no cloze item (each sentence is longer).
    const config = validateConfig({
      n_layer: 1,
      n_head: 2,
      n_embd: 16,
      vocab_size: 256,
      n_positions: 8,
      layer_norm_epsilon: 1e-5,
      tokenizer: "bytes",
    });
    const model = join(dir, "short");
    await saveModel(model, { config, params: initParams(config, 1) });
    const notes: string[] = [];
    const out = await run(["--model", model, "--data", data, "--cloze-items", "4", "--json"], notes);
    const [report] = JSON.parse(out.join("\n"));
    assert.ok(report.text.loss > 0, "the loss is still reported");
    assert.deepEqual(report.tasks, []);
    assert.ok(notes.some((n) => /^cloze: .*skipped for .*short/.test(n)), notes.join("\n"));
    await assert.rejects(
      run(["--model", model, "--data", data, "--cloze-items", "4", "--tasks", "cloze"]),
      /cloze: no item can be scored by .*short/,
    );
  });
});

Deno.test("a model without a tokenizer on a bare shard of ids: loss and perplexity, bits per byte unavailable", async () => {
  await withTempDir(async (dir) => {
    const path = join(FIXTURES, "qwen2_tiny"); // a Qwen2 of vocabulary 80 without tokenizer files
    const ids = Array.from(rand(4 * 16 + 1, 3), (x) => Math.floor((x + 1) * 40));
    const shard = join(dir, "val_000000.bin");
    await writeShard(shard, ids);
    const notes: string[] = [];
    const out = await run(["--model", path, "--data", shard, "--ctx", "16"], notes);
    const last = JSON.parse(out.at(-1)!);
    assert.deepEqual({ tokens: last.tokens, bytes: last.bytes, bpb: last.bpb }, {
      tokens: 64,
      bytes: null,
      bpb: null,
    });
    assert.ok(Math.abs(last.perplexity - Math.exp(last.loss)) < 1e-9 * last.perplexity);
    assert.match(out[2], /qwen2_tiny +21\.3K +\d\.\d{4} +\d+\.\d\d +-$/, "bpb shown as -");
    assert.ok(
      notes.some((n) => /ids without a tokenizer: bits per byte unavailable/.test(n)),
      notes.join("\n"),
    );
    assert.ok(
      notes.some((n) => /task cloze is built from text, .* no.* tokenizer: skipped/.test(n)),
      notes.join("\n"),
    );
    // The loss is the model's on those ids, as the library computes it.
    const { config, params } = await loadModel(path);
    const model = createModel(await getGpu(), config, params, { B: 4, T: 16 });
    try {
      assert.equal(last.loss, (await validationLoss(model, arraySource(Uint32Array.from(ids)))).loss);
    } finally {
      model.destroy();
    }

    const task = join(dir, "task.jsonl");
    await Deno.writeTextFile(task, JSON.stringify({ context: "a", choices: ["b", "c"], gold: 0 }) + "\n");
    await assert.rejects(
      run(["--model", path, "--data", shard, "--ctx", "16", "--tasks", task]),
      /qwen2_tiny: the model carries no tokenizer, which task task needs to encode its text/,
    );
    await assert.rejects(
      run(["--model", path, "--data", shard, "--ctx", "16", "--tasks", "cloze"]),
      /task cloze is built from text, and neither .* nor the model has a tokenizer$/,
    );
    // Prepared data of another vocabulary: its ids must still fit the model's.
    const input = join(dir, "text.txt");
    await Deno.writeTextFile(input, TEXT);
    const bytes = join(dir, "bytes");
    await prepare({ inputs: [input], out: bytes, tokenizer: "bytes", valFraction: 0.5 });
    await assert.rejects(
      run(["--model", path, "--data", bytes, "--ctx", "16"]),
      /token \d+ is not below .*qwen2_tiny's vocabulary of 80/,
    );
  });
});

Deno.test("eval --num-fewshot puts the harness's examples before each item and --samples writes every scored item", async () => {
  await withTempDir(async (dir) => {
    const tasks = new URL("../fixtures/tasks/", import.meta.url).pathname;
    const model = new URL("../../models/stories260K/model.gguf", import.meta.url).pathname;
    const samples = join(dir, "samples.jsonl");
    const common = ["--model", model, "--tasks", tasks + "piqa.jsonl", "--samples", samples];
    await run([...common, "--num-fewshot", "2", "--fewshot-file", tasks + "piqa_train.jsonl"]);
    const lines = (await Deno.readTextFile(samples)).trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(lines.length, 8);
    const [first] = lines;
    assert.deepEqual([first.model, first.task, first.line, first.gold], [model, "piqa", 1, 0]);
    assert.equal(first.logprobs.length, 2);
    assert.match(
      first.pairs[0][0],
      /^Question: [^\n]+\nAnswer: [^\n]+\n\nQuestion: [^\n]+\nAnswer: [^\n]+\n\nQuestion: How/,
    );
    assert.equal(first.acc, first.logprobs[1] > first.logprobs[0] ? 0 : 1);
    await assert.rejects(
      run([...common, "--fewshot-file", tasks + "piqa_train.jsonl"]),
      /--fewshot-file needs --num-fewshot/,
    );
    await assert.rejects(
      run([...common, "--num-fewshot", "2", "--fewshot-file", tasks + "arc.jsonl"]),
      /--fewshot-file .*arc\.jsonl holds arc items, task piqa piqa/,
    );
    await assert.rejects(
      run([...common, "--num-fewshot", "8"]),
      /--num-fewshot 8: piqa: 8 few-shot examples need 9/,
    );
  });
});
