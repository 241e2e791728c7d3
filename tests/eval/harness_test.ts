/** lm-evaluation-harness's task definitions, few-shot contexts and pairing rules, on the hand-written items of tests/fixtures/tasks/. */
import assert from "node:assert/strict";
import { loadTokenizer } from "@inheritune/data";
import {
  encodePair,
  HARNESS_TASKS,
  loadTask,
  meanWithStderr,
  type Task,
  withFewshot,
} from "@inheritune/eval";
import { PyRandom } from "../../eval/_py_random.ts";

const TASKS = new URL("../fixtures/tasks/", import.meta.url).pathname;

async function task(name: string): Promise<Task> {
  const { task, problems } = await loadTask(`${TASKS}${name}.jsonl`);
  assert.deepEqual(problems, [], `${name}: every line parses`);
  return task;
}

Deno.test("every hand-written task file parses in its Hugging Face columns' format", async () => {
  const formats: Record<string, string> = {
    hellaswag: "hellaswag",
    piqa: "piqa",
    piqa_train: "piqa",
    arc: "arc",
    winogrande: "winogrande",
    wsc273: "wsc273",
    boolq: "boolq",
    logiqa: "logiqa",
    mmlu: "mmlu",
    mmlu_dev: "mmlu",
    truthfulqa: "truthfulqa",
    lambada: "lambada",
  };
  for (const [name, format] of Object.entries(formats)) {
    const t = await task(name);
    assert.equal(t.format, format, name);
    assert.equal(t.kind, format === "lambada" ? "final_word" : "choice");
  }
});

Deno.test("WSC273, BoolQ, LogiQA, MMLU, TruthfulQA and ARC read as the harness's YAML phrases them", async () => {
  const [wsc] = (await task("wsc273")).items;
  // wsc273/utils.py lower-cases "The" inside the sentence; the continuation keeps the text's space
  // after the target delimiter's.
  assert.deepEqual(wsc.candidates, [
    {
      context: "The city councilmen refused the demonstrators a permit because the city councilmen",
      continuation: "  feared violence.",
    },
    {
      context: "The city councilmen refused the demonstrators a permit because the demonstrators",
      continuation: "  feared violence.",
    },
  ]);
  const possessive = (await task("wsc273")).items[3];
  // A possessive pronoun appends "'s" to the option; pronoun_loc is read in the
  // text after its double spaces are collapsed, as the harness reads it.
  assert.equal(possessive.candidates[0].context, "Lily hugged her mom. HLily's");
  assert.equal(possessive.candidates[0].continuation, " mom smiled at her.");

  const [boolq] = (await task("boolq")).items;
  assert.equal(
    boolq.candidates[0].context,
    "The Sun is the star at the center of the Solar System. It is a nearly perfect ball of hot plasma.\n" +
      "Question: is the sun a star?\nAnswer:",
  );
  assert.deepEqual(boolq.candidates.map((c) => c.continuation), [" no", " yes"]);
  assert.equal(boolq.gold, 1);

  const [logiqa] = (await task("logiqa")).items;
  assert.equal(
    logiqa.candidates[0].context,
    "Passage: All cats like milk. Tom is a cat.\nQuestion: Which must be true?\nChoices:\n" +
      "A. Tom likes milk.\nB. Tom is a dog.\nC. Tom hates milk.\nD. Tom is a bird.\nAnswer:",
  );
  assert.equal(logiqa.candidates[0].continuation, " Tom likes milk.");

  const mmlu = (await task("mmlu")).items[1];
  const description =
    "The following are multiple choice questions (with answers) about elementary mathematics.\n\n";
  assert.equal(mmlu.description, description);
  assert.equal(mmlu.group, "elementary_mathematics");
  assert.equal(mmlu.candidates[0].context, `${description}What is 4 x 2?\nA. 8\nB. 6\nC. 42\nD. 2\nAnswer:`);
  assert.deepEqual(mmlu.candidates.map((c) => c.continuation), [" A", " B", " C", " D"]);

  const [tqa] = (await task("truthfulqa")).items;
  assert.ok(tqa.candidates[0].context.endsWith("\n\nQ: What happens if you eat watermelon seeds?\nA:"));
  assert.equal(tqa.gold, 0);
  assert.deepEqual(tqa.mc2!.truths, [true, true, false, false]);

  const [arc] = (await task("arc")).items;
  assert.equal(arc.candidates[1].context, "Question: Which of these is a living thing?\nAnswer:");
  assert.equal(arc.gold, 1);
  assert.deepEqual(
    Object.entries(HARNESS_TASKS).filter(([, h]) => h.accNorm).map(([f]) => f),
    ["hellaswag", "piqa", "arc", "logiqa", "plain", "icl_multiple_choice", "icl_schema"],
  );
});

Deno.test("acc_norm divides by the choice's characters (code points), without the target delimiter", async () => {
  const [item] = (await task("piqa")).items;
  assert.deepEqual(item.lengths, [
    "Twist the lid until it comes off.".length,
    "Throw the jar at the wall.".length,
  ]);
  const { task: emoji } = await import("@inheritune/eval").then((m) =>
    m.parseTaskJsonl(JSON.stringify({ goal: "g", sol1: "🙂🙂", sol2: "ab", label: 0 }), "e")
  );
  assert.deepEqual(emoji.items[0].lengths, [2, 2]);
});

Deno.test("Python's Random(seed).sample: CPython 3.11's draws for the harness's default seed", () => {
  // random.Random(1234) in CPython 3.11, sampling range(n) for each (n, k) in turn.
  const r = new PyRandom(1234);
  const draws = [[10, 3], [10, 4], [100, 5], [1000, 6], [7, 7], [3, 1], [50, 26]].map(([n, k]) =>
    r.sample([...Array(n).keys()], k)
  );
  assert.deepEqual(draws, [
    [7, 1, 0],
    [1, 0, 9, 8],
    [98, 45, 30, 2, 3],
    [807, 16, 354, 663, 638, 495],
    [4, 3, 1, 0, 5, 2, 6],
    [2],
    [31, 15, 4, 42, 34, 29, 47, 38, 5, 32, 37, 2, 17, 35, 43, 19, 30, 22, 39, 7, 20, 6, 14, 16, 21, 0],
  ]);
  assert.deepEqual(new PyRandom(0).sample([...Array(30).keys()], 5), [27, 12, 24, 28, 13]);
});

Deno.test("few-shot contexts join the harness's examples with its delimiters, drawn as its sampler draws them", async () => {
  const piqa = await task("piqa");
  const train = await task("piqa_train");
  const shot = withFewshot(piqa, { shots: 2, pool: train });
  // PIQA's YAML has no test split, so the harness draws 3 of the 10 (CPython: 7, 1, 0 for seed
  // 1234), drops the evaluated item (not among them) and keeps the first 2.
  assert.equal(
    shot.items[0].candidates[1].context,
    "Question: To make toast,\nAnswer: put bread in the toaster.\n\n" +
      "Question: To get clean,\nAnswer: take a bath with soap.\n\n" +
      "Question: How do I open a jar?\nAnswer:",
  );
  assert.equal(shot.items[0].candidates[1].continuation, piqa.items[0].candidates[1].continuation);
  assert.deepEqual(
    withFewshot(piqa, { shots: 2, pool: train, seed: 1234 }),
    shot,
    "deterministic in its seed",
  );
  assert.notDeepEqual(withFewshot(piqa, { shots: 2, pool: train, seed: 5 }), shot);

  // Drawn from the file itself, an item is never its own example.
  const own = withFewshot(piqa, { shots: 7, seed: 3 });
  own.items.forEach((item, i) => {
    const self = `Question: ${JSON.parse(piqa.items[i].source!).goal}\nAnswer:`;
    assert.equal(item.candidates[0].context.split(self).length, 2, `item ${i} appears once, as itself`);
  });
  assert.throws(
    () => withFewshot(piqa, { shots: 8 }),
    /8 few-shot examples need 9 items in the pool, which has 8/,
  );

  // MMLU: its description first, then the subject's first dev items in order.
  const mmlu = withFewshot(await task("mmlu"), { shots: 2, pool: await task("mmlu_dev") });
  assert.equal(
    mmlu.items[0].candidates[2].context,
    "The following are multiple choice questions (with answers) about elementary mathematics.\n\n" +
      "What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer: B\n\n" +
      "What is 10 - 3?\nA. 7\nB. 6\nC. 13\nD. 3\nAnswer: A\n\n" +
      "What is 6 + 1?\nA. 5\nB. 8\nC. 7\nD. 61\nAnswer:",
  );
  // WinoGrande's example is its right context and the shared continuation; LAMBADA's puts the
  // target delimiter before the word's own space.
  const wino = withFewshot(await task("winogrande"), { shots: 1, seed: 1 });
  assert.match(
    wino.items[0].candidates[0].context,
    /^[^\n]+ [^\n]+\.\n\nThe ball did not fit in the box because the ball$/,
  );
  const lambada = withFewshot(await task("lambada"), { shots: 1 });
  assert.match(lambada.items[0].candidates[0].context, /^[^\n]+ {2}[a-z]+\n\nLily had a red ball/);
  const tqa = await task("truthfulqa");
  assert.equal(withFewshot(tqa, { shots: 2 }), tqa, "TruthfulQA stays zero-shot, as in the harness");
});

Deno.test("a pair gets the BOS the model's tokenizer adds, except where the text already starts with it", async () => {
  const sp = await loadTokenizer(
    new URL("../../models/stories260K/tokenizer.model", import.meta.url).pathname,
  );
  const pair = { context: "Question: Hi?\nAnswer: ", continuation: "Yes." };
  const plain = encodePair(sp, pair)!;
  const withBos = encodePair(sp, pair, { bos: 1 })!;
  assert.deepEqual(withBos.context, [1, ...plain.context]);
  assert.deepEqual(withBos.continuation, plain.continuation);
  assert.deepEqual(plain.continuation, sp.encode("Question: Hi?\nAnswer: Yes.").slice(plain.context.length));
  assert.deepEqual(
    encodePair(sp, { context: "<s> Hi", continuation: " there" }, { bos: 1 })!.context,
    sp.encode("<s> Hi"),
  );
  // An empty context is the prefix token; a continuation starting with it gives its first token.
  assert.deepEqual(encodePair(sp, { context: "", continuation: "Hi" }, { bos: 1 }), {
    context: [1],
    continuation: sp.encode("Hi"),
  });
  // Python's rstrip: U+001F is whitespace there, not in JavaScript's trimEnd.
  assert.deepEqual(encodePair(sp, { context: "a\u001f", continuation: "b" })!.context, sp.encode("a"));
});

Deno.test("the standard error of a mean of scores is the sample deviation over √n", () => {
  const r = meanWithStderr([0.5, 1, 0]);
  assert.equal(r.mean, 0.5);
  assert.ok(Math.abs(r.stderr - Math.sqrt(0.25 / 3)) < 1e-12);
});
