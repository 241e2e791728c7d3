/** Task JSONL formats, malformed lines, and the seeded cloze builder. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DataError, loadTokenizer, openDataset, prepare } from "@inheritune/data";
import {
  buildCloze,
  buildClozeFromSplit,
  encodePair,
  loadTask,
  meanWithStderr,
  parseTaskJsonl,
  parseTaskLine,
  splitSentences,
  taskToJsonl,
} from "@inheritune/eval";
import { withTempDir } from "../_util.ts";

function parsed(line: string) {
  const p = parseTaskLine(line);
  if (typeof p === "string") throw new Error(`unexpected problem: ${p}`);
  return p;
}

Deno.test("HellaSwag lines parse with lm-evaluation-harness's query and cleaned endings", () => {
  const p = parsed(JSON.stringify({
    activity_label: "Baking",
    ctx_a: "A man opens the oven.",
    ctx_b: "he Then",
    ctx: "A man opens the oven. he",
    endings: ["takes out [title] a cake.", "sings.", "sleeps.", "runs."],
    label: "0",
  }));
  assert.equal(p.format, "hellaswag");
  assert.equal(p.gold, 0);
  assert.deepEqual(p.candidates[0], {
    context: "Baking: A man opens the oven. He then",
    continuation: " takes out. a cake.",
  });
  assert.equal(
    parsed(JSON.stringify({ ctx: "x", endings: ["a", "b"], label: 1 })).candidates[1].context,
    "x",
  );
});

Deno.test("PIQA, ARC (both choice layouts), WinoGrande, LAMBADA and plain lines parse", () => {
  const piqa = parsed(
    JSON.stringify({ goal: "Open a jar", sol1: "twist the lid", sol2: "eat it", label: 0 }),
  );
  assert.deepEqual(piqa.candidates.map((c) => c.continuation), [" twist the lid", " eat it"]);
  assert.equal(piqa.candidates[0].context, "Question: Open a jar\nAnswer:");

  const hf = parsed(
    JSON.stringify({
      question: "Which is a metal?",
      choices: { text: ["wood", "iron"], label: ["A", "B"] },
      answerKey: "B",
    }).replace('"question":"Which is a metal?"', '"question":{"stem":"Which is a metal?"}'),
  );
  const ai2 = parsed(JSON.stringify({
    question: {
      stem: "Which is a metal?",
      choices: [{ text: "wood", label: "1" }, { text: "iron", label: "2" }],
    },
    answerKey: "2",
  }));
  for (const arc of [hf, ai2]) {
    assert.equal(arc.format, "arc");
    assert.equal(arc.gold, 1);
    assert.deepEqual(arc.candidates[1], {
      context: "Question: Which is a metal?\nAnswer:",
      continuation: " iron",
    });
  }

  const wino = parsed(
    JSON.stringify({
      sentence: "The cup fell off the table because _ was tilted.",
      option1: "the cup",
      option2: "the table",
      answer: "2",
    }),
  );
  assert.equal(wino.gold, 1);
  assert.deepEqual(wino.candidates, [
    { context: "The cup fell off the table because the cup", continuation: " was tilted." },
    { context: "The cup fell off the table because the table", continuation: " was tilted." },
  ]);

  const lambada = parsed(JSON.stringify({ text: "She lit the candle and blew out the match" }));
  assert.deepEqual(lambada, {
    format: "lambada",
    candidates: [{ context: "She lit the candle and blew out the", continuation: " match" }],
    gold: 0,
    // As a few-shot example the harness puts its target delimiter before the word's own space.
    example: "She lit the candle and blew out the  match",
  });

  const plain = parsed(JSON.stringify({ context: "2 + 2 =", choices: [" 4", " 5"], gold: 0 }));
  assert.deepEqual(plain.candidates[0], { context: "2 + 2 =", continuation: " 4" });
});

Deno.test("llm-foundry ICL lines parse: multiple choice, schema and language modelling", () => {
  const mc = parsed(
    JSON.stringify({ query: "Question: 2 + 2 =\nAnswer:", choices: ["4", "5", "22"], gold: 0 }),
  );
  assert.equal(mc.format, "icl_multiple_choice");
  assert.equal(mc.gold, 0);
  assert.deepEqual(mc.candidates.map((c) => c.continuation), [" 4", " 5", " 22"]);
  assert.equal(mc.candidates[2].context, "Question: 2 + 2 =\nAnswer:");

  const schema = parsed(JSON.stringify({
    context_options: [
      "The cup fell off the table because the cup",
      "The cup fell off the table because the table",
    ],
    continuation: "was tilted.",
    gold: 1,
  }));
  assert.equal(schema.format, "icl_schema");
  assert.equal(schema.gold, 1);
  assert.deepEqual(schema.candidates[1], {
    context: "The cup fell off the table because the table",
    continuation: " was tilted.",
  });

  // A continuation that brings its own space keeps it; no second one is added.
  const lm = parsed(
    JSON.stringify({ context: "She lit the candle and blew out the", continuation: " match" }),
  );
  assert.deepEqual(lm, {
    format: "icl_language_modeling",
    candidates: [{ context: "She lit the candle and blew out the", continuation: " match" }],
    gold: 0,
  });
  const { task } = parseTaskJsonl(
    [
      JSON.stringify({ context: "a b", continuation: "c" }),
      JSON.stringify({ context: "d e", continuation: "f" }),
    ].join("\n"),
    "lm",
  );
  assert.equal(task.kind, "final_word");
  assert.throws(
    () => parseTaskJsonl(JSON.stringify({ query: "q", choices: ["a", "b"], gold: 3 }), "bad"),
    /bad: no valid task item \(line 1: iclMultipleChoice: gold 3 is not a choice index \(0\.\.1\)\)/,
  );
});

Deno.test("malformed lines are skipped and reported with their line numbers; the valid ones are kept", () => {
  const lines = [
    JSON.stringify({ context: "a", choices: [" b", " c"], gold: 1 }),
    "{not json",
    "",
    JSON.stringify({ context: "a", choices: [" b", " c"], gold: 2 }),
    JSON.stringify({ foo: 1 }),
    JSON.stringify({ goal: "g", sol1: "x", sol2: "y", label: 0 }),
    JSON.stringify({ sentence: "no blank", option1: "a", option2: "b", answer: "1" }),
    "[1, 2]",
    JSON.stringify({ context: "d", choices: [" e", " f"], gold: "0" }),
  ];
  const { task, problems } = parseTaskJsonl(lines.join("\n"), "mixed");
  assert.equal(task.format, "plain");
  assert.equal(task.kind, "choice");
  assert.deepEqual(task.items.map((i) => [i.line, i.gold]), [[1, 1], [9, 0]]);
  assert.deepEqual(problems.map((p) => p.line), [2, 4, 5, 6, 7, 8]);
  assert.match(problems[0].message, /invalid JSON/);
  assert.match(problems[1].message, /gold 2 is not a choice index \(0\.\.1\)/);
  assert.match(problems[2].message, /no known task format has the fields foo/);
  assert.match(problems[3].message, /a piqa item in a plain file/);
  assert.match(problems[4].message, /no _ blank/);
  assert.match(problems[5].message, /not a JSON object/);
});

Deno.test("a task file without any valid line is a DataError naming the file and the first problem", async () => {
  assert.throws(
    () => parseTaskJsonl("{bad\n", "broken"),
    (e: Error) =>
      e instanceof DataError && /broken: no valid task item \(line 1: invalid JSON/.test(e.message),
  );
  assert.throws(() => parseTaskJsonl("\n\n", "empty"), /empty: no valid task item \(the file is empty\)/);
  await assert.rejects(loadTask("/nonexistent/task.jsonl"), /cannot read the task file/);
  await withTempDir(async (dir) => {
    const path = join(dir, "lam.jsonl");
    await Deno.writeTextFile(path, JSON.stringify({ text: "one two three" }) + "\n");
    const { task } = await loadTask(path);
    assert.equal(task.name, "lam");
    assert.equal(task.kind, "final_word");
  });
});

Deno.test("encodePair moves the context's trailing space into the continuation and splits the joint encoding", async () => {
  const gpt2 = await loadTokenizer("gpt2");
  const p = encodePair(gpt2, { context: "The cat sat on the ", continuation: "mat" })!;
  assert.deepEqual(p.context, gpt2.encode("The cat sat on the"));
  assert.deepEqual(p.continuation, gpt2.encode(" mat"));
  assert.deepEqual(encodePair(gpt2, { context: "", continuation: "Hi" }), {
    context: [50256],
    continuation: gpt2.encode("Hi"),
  });
  const bytes = await loadTokenizer("bytes");
  assert.equal(encodePair(bytes, { context: "", continuation: "Hi" }), null);
  assert.deepEqual(encodePair(bytes, { context: "ab", continuation: " é" }), {
    context: [97, 98],
    continuation: [32, 0xc3, 0xa9],
  });
});

Deno.test("accuracy's standard error is the sample one, √(p(1−p)/(n−1))", () => {
  const r = meanWithStderr([true, false, false, true, true]);
  assert.equal(r.mean, 0.6);
  assert.ok(Math.abs(r.stderr - Math.sqrt(0.24 / 4)) < 1e-12);
  assert.ok(Number.isNaN(meanWithStderr([true]).stderr));
});

const TEXT = Array.from(
  { length: 40 },
  (_, p) =>
    Array.from(
      { length: 4 },
      (_, s) =>
        `Paragraph ${p} has sentence number ${s} about the weather ${"and more ".repeat(s % 3)}today.`,
    )
      .join(" "),
).join("\n\n");

Deno.test("the cloze set is deterministic in its seed, with the true sentence at gold among distinct choices", () => {
  const a = buildCloze(TEXT, { items: 30, seed: 7, maxChars: 100 });
  const b = buildCloze(TEXT, { items: 30, seed: 7, maxChars: 100 });
  const c = buildCloze(TEXT, { items: 30, seed: 8, maxChars: 100 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.items, c.items);
  assert.equal(a.items.length, 30);
  assert.equal(a.name, "cloze");
  const sentences = new Set(splitSentences(TEXT).flat());
  const golds = new Set<number>();
  for (const item of a.items) {
    assert.equal(item.candidates.length, 4);
    const choices = item.candidates.map((x) => x.continuation);
    assert.equal(new Set(choices).size, 4, "distinct choices");
    for (const ch of choices) assert.ok(sentences.has(ch.slice(1)), `choice ${ch} is a sentence of the text`);
    const ctx = item.candidates[0].context;
    const gold = choices[item.gold].slice(1);
    // The context is the one or two sentences just before the gold one in its paragraph.
    assert.ok(TEXT.includes(`${ctx} ${gold}`), "context precedes the gold sentence");
    golds.add(item.gold);
  }
  assert.equal(golds.size, 4, "the gold position varies");
  assert.deepEqual(a.items.map((i) => i.line), a.items.map((_, k) => k + 1), "lines as in the written JSONL");
  const short = buildCloze(TEXT, { items: 1000 });
  assert.ok(short.items.length > 0 && short.items.length < 1000, "at most the eligible sentences");
  for (const item of short.items) {
    assert.ok(item.candidates[item.gold].continuation.length <= 61, "answers of ≤ 60 characters by default");
  }
});

Deno.test("the final-word cloze asks for a sentence's last word among other final words", () => {
  const task = buildCloze(TEXT, { kind: "word", items: 20, seed: 3 });
  assert.equal(task.name, "cloze-word");
  for (const item of task.items) {
    const word = item.candidates[item.gold].continuation;
    assert.match(word, /^ [A-Za-z]+$/);
    assert.ok(TEXT.includes(`${item.candidates[0].context}${word}.`));
  }
});

Deno.test("a cloze set built from a prepared split round-trips through JSONL", async () => {
  await withTempDir(async (dir) => {
    const input = join(dir, "text.txt");
    await Deno.writeTextFile(input, TEXT);
    await prepare({ inputs: [input], out: join(dir, "data"), tokenizer: "gpt2", valFraction: 0 });
    using data = await openDataset(join(dir, "data"));
    const task = buildClozeFromSplit(data.split("train"), await loadTokenizer("gpt2"), {
      items: 10,
      seed: 1,
    });
    assert.deepEqual(task.items, buildCloze(TEXT, { items: 10, seed: 1 }).items);
    const back = parseTaskJsonl(taskToJsonl(task), "cloze");
    assert.deepEqual(back.problems, []);
    assert.deepEqual(
      back.task.items.map((i) => [i.candidates, i.gold]),
      task.items.map((i) => [i.candidates, i.gold]),
    );
  });
});
