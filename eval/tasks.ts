/**
 * Zero-shot tasks as lists of scored candidates: every item offers one or more
 * (context, continuation) pairs, and the model's choice is the pair with the highest
 * log p(continuation | context). Reads the usual JSONL forms of HellaSwag, PIQA, ARC, WinoGrande
 * and LAMBADA, phrased as lm-evaluation-harness phrases them; MosaicML llm-foundry's ICL forms
 * (multiple choice, schema, language modelling), which many evaluation sets are distributed in;
 * and a plain `{context, choices, gold}` form.
 *
 * Scoring, the same for every form (`zero_shot.ts`): a choice item is right when its gold
 * candidate has the highest summed log-likelihood (`acc`, lm-eval's) or the highest per UTF-8
 * byte of continuation (`acc_norm`); llm-foundry itself ranks choices by mean loss per token,
 * which neither reproduces. A final-word item is right when greedy decoding reproduces the
 * continuation, as in lm-eval's LAMBADA and llm-foundry's language-modelling accuracy.
 *
 * A malformed line (invalid JSON, unknown fields, a gold label out of range, a line in another
 * format than the file's first item) is skipped and reported with its line number; a file with no
 * valid item is an error.
 *
 * @module
 */
import { basename } from "node:path";
import { DataError } from "@inheritune/data";

/** One way to continue: scored by log p(`continuation` | `context`). */
export interface Candidate {
  /** Text the model conditions on. */
  readonly context: string;
  /** Text whose tokens are scored. */
  readonly continuation: string;
}

/** One task item: its candidates and the index of the right one. */
export interface TaskItem {
  /** The candidates (one for a final-word item). */
  readonly candidates: readonly Candidate[];
  /** Index of the correct candidate. */
  readonly gold: number;
  /** 1-based line of the JSONL file it came from (0 when built in memory). */
  readonly line: number;
}

/** Formats {@linkcode parseTaskLine} recognises. */
export type TaskFormat =
  | "hellaswag"
  | "piqa"
  | "arc"
  | "winogrande"
  | "lambada"
  | "plain"
  | "icl_multiple_choice"
  | "icl_schema"
  | "icl_language_modeling";

/**
 * How a task is scored: `choice` picks the best of several candidates (acc, acc_norm);
 * `final_word` asks whether greedy decoding reproduces the one candidate (acc) and measures its
 * perplexity.
 */
export type TaskKind = "choice" | "final_word";

/** A parsed task. */
export interface Task {
  /** Name shown in reports (the file name without `.jsonl`, or the built-in task's name). */
  readonly name: string;
  /** Format of its items. */
  readonly format: TaskFormat;
  /** How it is scored. */
  readonly kind: TaskKind;
  /** The items, in file order. */
  readonly items: readonly TaskItem[];
}

/** A line that was skipped, with the reason. */
export interface LineProblem {
  /** 1-based line number. */
  readonly line: number;
  /** One-line description. */
  readonly message: string;
}

/** Result of {@linkcode parseTaskJsonl}: the task and the lines it skipped. */
export interface ParsedTask {
  /** The task built from the valid lines. */
  readonly task: Task;
  /** Malformed lines, skipped. */
  readonly problems: readonly LineProblem[];
}

type Json = Record<string, unknown>;

/** A line's item (its format, candidates and gold index), or the reason it is malformed. */
export type ParsedLine = { format: TaskFormat; candidates: Candidate[]; gold: number } | string;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(o: Json, key: string): string {
  const v = o[key];
  if (typeof v !== "string") throw new TypeError(`field ${key} must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function strings(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.length === 0 || !v.every((s) => typeof s === "string")) {
    throw new TypeError(`${what} must be a non-empty array of strings`);
  }
  return v;
}

/** A gold label given as a number or a numeric string, checked against `n` choices. */
function label(v: unknown, n: number, what: string, base = 0): number {
  const i = typeof v === "string" && v.trim() !== "" ? Number(v) : v;
  if (typeof i !== "number" || !Number.isInteger(i) || i - base < 0 || i - base >= n) {
    throw new TypeError(`${what} ${JSON.stringify(v)} is not a choice index (${base}..${base + n - 1})`);
  }
  return i - base;
}

const cont = (context: string, choices: string[]): Candidate[] =>
  choices.map((c) => ({ context, continuation: " " + c }));

/** lm-evaluation-harness's HellaSwag clean-up of WikiHow artefacts. */
function hellaswagText(text: string): string {
  return text.trim().replaceAll(" [title]", ". ").replace(/\[.*?\]/g, "").replaceAll("  ", " ");
}

function hellaswag(o: Json): ParsedLine {
  const ctx = o.ctx_a !== undefined && o.ctx_b !== undefined
    ? `${str(o, "ctx_a")} ${capitalize(str(o, "ctx_b"))}`
    : str(o, "ctx");
  const query = o.activity_label === undefined ? ctx : `${str(o, "activity_label")}: ${ctx}`;
  const endings = strings(o.endings, "endings").map(hellaswagText);
  return {
    format: "hellaswag",
    candidates: cont(hellaswagText(query), endings),
    gold: label(o.label, endings.length, "label"),
  };
}

/** Python's `str.capitalize`: first character upper case, the rest lower case. */
function capitalize(s: string): string {
  return s.length === 0 ? s : s[0].toUpperCase() + s.slice(1).toLowerCase();
}

function piqa(o: Json): ParsedLine {
  const sols = [str(o, "sol1"), str(o, "sol2")];
  return {
    format: "piqa",
    candidates: cont(`Question: ${str(o, "goal")}\nAnswer:`, sols),
    gold: label(o.label, 2, "label"),
  };
}

function arc(o: Json): ParsedLine {
  const q = o.question as Json;
  let texts: string[], labels: string[];
  // The AI2 release nests choices in the question as [{text, label}]; Hugging Face's flattens
  // them to {text: [...], label: [...]} beside it.
  const raw = o.choices ?? q.choices;
  if (Array.isArray(raw)) {
    if (!raw.every((c) => isObject(c) && typeof c.text === "string" && typeof c.label === "string")) {
      throw new TypeError("choices must be objects with string text and label");
    }
    texts = raw.map((c) => c.text as string);
    labels = raw.map((c) => c.label as string);
  } else if (isObject(raw)) {
    texts = strings(raw.text, "choices.text");
    labels = strings(raw.label, "choices.label");
    if (labels.length !== texts.length) {
      throw new TypeError("choices.text and choices.label differ in length");
    }
  } else {
    throw new TypeError("choices is missing");
  }
  const key = str(o, "answerKey");
  const gold = labels.indexOf(key);
  if (gold < 0) {
    throw new TypeError(`answerKey ${JSON.stringify(key)} is not one of the labels ${labels.join(",")}`);
  }
  return { format: "arc", candidates: cont(`Question: ${str(q, "stem")}\nAnswer:`, texts), gold };
}

function winogrande(o: Json): ParsedLine {
  const sentence = str(o, "sentence");
  const blank = sentence.indexOf("_");
  if (blank < 0) throw new TypeError("sentence has no _ blank");
  // Each option fills the blank in the context; the rest of the sentence is the scored
  // continuation, the same for both (lm-evaluation-harness's partial scoring).
  const continuation = " " + sentence.slice(blank + 1).trim();
  const options = [str(o, "option1"), str(o, "option2")];
  return {
    format: "winogrande",
    candidates: options.map((opt) => ({ context: sentence.slice(0, blank) + opt, continuation })),
    gold: label(o.answer, 2, "answer", 1),
  };
}

function lambada(o: Json): ParsedLine {
  const text = str(o, "text").trimEnd();
  const cut = text.lastIndexOf(" ");
  if (cut <= 0) throw new TypeError("text needs a context and a final word separated by a space");
  return {
    format: "lambada",
    candidates: [{ context: text.slice(0, cut), continuation: text.slice(cut) }],
    gold: 0,
  };
}

function plain(o: Json): ParsedLine {
  const choices = strings(o.choices, "choices");
  return {
    format: "plain",
    candidates: choices.map((c) => ({ context: str(o, "context"), continuation: c })),
    gold: label(o.gold, choices.length, "gold"),
  };
}

// MosaicML llm-foundry's in-context-learning JSONL. Its delimiter between a context and a
// continuation is a space, added here where neither side has whitespace at the boundary.
function joined(context: string, continuation: string): string {
  return /\s$/.test(context) || /^\s/.test(continuation) ? continuation : " " + continuation;
}

function iclMultipleChoice(o: Json): ParsedLine {
  const query = str(o, "query");
  const choices = strings(o.choices, "choices");
  return {
    format: "icl_multiple_choice",
    candidates: choices.map((c) => ({ context: query, continuation: joined(query, c) })),
    gold: label(o.gold, choices.length, "gold"),
  };
}

function iclSchema(o: Json): ParsedLine {
  const options = strings(o.context_options, "context_options");
  const continuation = str(o, "continuation");
  return {
    format: "icl_schema",
    candidates: options.map((context) => ({ context, continuation: joined(context, continuation) })),
    gold: label(o.gold, options.length, "gold"),
  };
}

function iclLanguageModeling(o: Json): ParsedLine {
  const context = str(o, "context");
  return {
    format: "icl_language_modeling",
    candidates: [{ context, continuation: joined(context, str(o, "continuation")) }],
    gold: 0,
  };
}

/** Recognises a line's format by its fields. */
function detect(o: Json): ((o: Json) => ParsedLine) | undefined {
  if ("query" in o && "choices" in o) return iclMultipleChoice;
  if ("context_options" in o) return iclSchema;
  if ("context" in o && "continuation" in o) return iclLanguageModeling;
  if ("endings" in o) return hellaswag;
  if ("goal" in o && "sol1" in o) return piqa;
  if (isObject(o.question) && "answerKey" in o) return arc;
  if ("sentence" in o && "option1" in o) return winogrande;
  if ("context" in o && "choices" in o) return plain;
  if ("text" in o) return lambada;
  return undefined;
}

/**
 * Parses one JSONL line into candidates and a gold index, detecting its format by its fields.
 * lm-evaluation-harness's forms: `endings` HellaSwag, `goal`/`sol1` PIQA, `question`/`answerKey`
 * ARC, `sentence`/`option1` WinoGrande, `text` LAMBADA; llm-foundry's ICL forms: `query`/`choices`
 * multiple choice, `context_options`/`continuation` schema (WinoGrande-style: each option is a
 * context, the shared continuation is scored), `context`/`continuation` language modelling
 * (LAMBADA-style: greedy match and perplexity); and a plain `context`/`choices`. Returns a
 * one-line reason when the line is malformed.
 */
export function parseTaskLine(line: string): ParsedLine {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch (e) {
    return `invalid JSON (${(e as Error).message.split("\n")[0]})`;
  }
  if (!isObject(o)) return "not a JSON object";
  const parse = detect(o);
  if (!parse) return `no known task format has the fields ${Object.keys(o).join(", ") || "(none)"}`;
  try {
    return parse(o);
  } catch (e) {
    if (e instanceof TypeError) return `${parse.name}: ${e.message}`;
    throw e;
  }
}

/**
 * Parses a JSONL task: one item per non-blank line, all in the format of the first valid line.
 * Malformed lines are skipped and listed in `problems` with their line numbers.
 *
 * @throws {DataError} naming `name` when no line holds a valid item.
 */
export function parseTaskJsonl(text: string, name: string): ParsedTask {
  const items: TaskItem[] = [];
  const problems: LineProblem[] = [];
  let format: TaskFormat | undefined;
  text.split("\n").forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === "") return;
    const parsed = parseTaskLine(raw);
    if (typeof parsed === "string") {
      problems.push({ line, message: parsed });
    } else if (format !== undefined && parsed.format !== format) {
      problems.push({ line, message: `a ${parsed.format} item in a ${format} file` });
    } else {
      format = parsed.format;
      items.push({ candidates: parsed.candidates, gold: parsed.gold, line });
    }
  });
  if (format === undefined) {
    const first = problems[0];
    throw new DataError(
      `${name}: no valid task item${
        first ? ` (line ${first.line}: ${first.message})` : " (the file is empty)"
      }`,
    );
  }
  const kind = format === "lambada" || format === "icl_language_modeling" ? "final_word" : "choice";
  return { task: { name, format, kind, items }, problems };
}

/**
 * Reads a JSONL task file; the task is named after the file (without `.jsonl`).
 *
 * @throws {DataError} when the file cannot be read or holds no valid item.
 */
export async function loadTask(path: string): Promise<ParsedTask> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new DataError(`${path}: cannot read the task file (${(e as Error).message})`);
  }
  return parseTaskJsonl(text, basename(path).replace(/\.jsonl$/, ""));
}

/**
 * The plain JSONL form of `task`'s items (`{context, choices, gold}` per line), which
 * {@linkcode parseTaskJsonl} reads back to the same candidates when every candidate of an item
 * shares one context.
 */
export function taskToJsonl(task: Task): string {
  return task.items.map((item) => {
    const context = item.candidates[0].context;
    if (item.candidates.some((c) => c.context !== context)) {
      throw new RangeError(
        `${task.name}: item of line ${item.line} has several contexts; the plain form has one`,
      );
    }
    return JSON.stringify({ context, choices: item.candidates.map((c) => c.continuation), gold: item.gold }) +
      "\n";
  }).join("");
}
