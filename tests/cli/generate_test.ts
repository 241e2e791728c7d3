/**
 * `deno task generate` on the real stories260K model: greedy text, sampling, bad input; from ids on
 * the family fixtures, which carry no tokenizer: transformers' greedy ids.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { readSafetensors } from "@inheritune/core";
import { runCli } from "../_util.ts";
import { FAMILY_FIXTURES, FIXTURES } from "../core/_fixtures.ts";

const MODEL = "models/stories260K/model.gguf";

Deno.test("greedy generation from BOS with stories260K writes its TinyStories opening", async () => {
  const r = await runCli([
    "generate",
    "--model",
    MODEL,
    "--max-new-tokens",
    "30",
    "--temperature",
    "0",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  // BOS, then the tokens of "Once upon a time, there was a little girl named Lily. She loved ..."
  assert.deepEqual(json.ids.slice(0, 12), [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315]);
  assert.equal(json.ids.length, 31);
  assert.match(
    json.text,
    /^Once upon a time, there was a little girl named Lily\. She loved to play outside/,
  );
  assert.ok(r.stdout.startsWith(json.text), "the text streamed before the JSON line is the same");
});

Deno.test("a prompt is continued after BOS, and a seed makes sampling repeatable", async () => {
  const args = [
    "generate",
    "--model",
    MODEL,
    "--prompt",
    "Tom had a dog",
    "--max-new-tokens",
    "12",
    "--json",
  ];
  const [a, b] = [await runCli([...args, "--seed", "7"]), await runCli([...args, "--seed", "7"])];
  assert.equal(a.code, 0, a.stderr);
  const [ja, jb] = [a, b].map((r) => JSON.parse(r.stdout.trim().split("\n").at(-1)!));
  assert.deepEqual(ja, jb);
  assert.equal(ja.ids[0], 1, "BOS first");
  assert.match(ja.text, /^Tom had a dog/);
});

Deno.test("generate rejects bad input with one line and exit code 2", async () => {
  const cases: [string[], RegExp][] = [
    [["--model", "nope.gguf"], /^inheritune generate: nope\.gguf: cannot read/],
    [["--model", MODEL, "--temperature=-1"], /^inheritune generate: --temperature must be ≥ 0, got -1$/],
    [["--model", MODEL, "--top-k", "x"], /^inheritune generate: --top-k must be an integer, got "x"$/],
    [[], /^inheritune generate: --model is required$/],
    [
      ["--model", MODEL, "--prompt-ids", "1,x"],
      /^inheritune generate: --prompt-ids: "x" is not a token id below the model's vocabulary of 512$/,
    ],
    [["--model", MODEL, "--prompt-ids", "512"], /--prompt-ids: "512" is not a token id below/],
    [
      ["--model", MODEL, "--prompt-ids", "1", "--prompt", "a"],
      /--prompt and --prompt-ids exclude each other$/,
    ],
    [
      ["--model", join(FIXTURES, "qwen3_tiny")],
      /qwen3_tiny: the model carries no tokenizer .*: give the prompt as ids with --prompt-ids$/,
    ],
  ];
  for (const [args, pattern] of cases) {
    const r = await runCli(["generate", ...args]);
    assert.equal(r.code, 2, `${args}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr.trim(), pattern);
  }
});

for (const c of FAMILY_FIXTURES.filter((c) => c.runs)) {
  Deno.test(`--prompt-ids on ${c.name}, which has no tokenizer, gives transformers' greedy ids`, async () => {
    const { tensors } = await readSafetensors(join(FIXTURES, `${c.name}_expected.safetensors`));
    const prompt = [...tensors.get("greedy_prompt")!.data];
    const greedy = [...tensors.get("greedy")!.data];
    const r = await runCli([
      "generate",
      "--model",
      join(FIXTURES, c.name),
      "--prompt-ids",
      prompt.join(","),
      "--max-new-tokens",
      String(greedy.length),
      "--temperature",
      "0",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.deepEqual(JSON.parse(lines.at(-1)!), { ids: [...prompt, ...greedy], text: null });
    assert.equal(lines[0], [...prompt, ...greedy].join(" "), "the ids stream as they come");
  });
}
