/**
 * Tasks as lists of scored candidates: every item offers one or more (context, continuation)
 * pairs, and the model's choice is the pair with the highest log p(continuation | context).
 * Reads the forms the paper's benchmarks are distributed in (the columns of their Hugging Face
 * datasets) and phrases each as lm-evaluation-harness 0.4.13's task YAML does (its
 * `doc_to_text`, `doc_to_choice`, `doc_to_target`, `target_delimiter` " " and the metrics it
 * reports): HellaSwag, PIQA, ARC, WinoGrande, Winograd (WSC273), BoolQ, LogiQA, MMLU,
 * TruthfulQA (MC1 and MC2 from one file) and LAMBADA; MosaicML llm-foundry's ICL forms (multiple
 * choice, schema, language modelling); and a plain `{context, choices, gold}` form.
 *
 * Scoring (`zero_shot.ts`): a choice item is right when its gold candidate has the highest summed
 * log-likelihood (`acc`); `acc_norm`, where the harness reports it, divides each by its choice's
 * length in characters ({@linkcode TaskItem.lengths}). llm-foundry itself ranks choices by mean
 * loss per token, which neither reproduces. A final-word item is right when greedy decoding
 * reproduces the continuation, as in lm-eval's LAMBADA and llm-foundry's language-modelling
 * accuracy. Few-shot contexts are built from these items by `fewshot.ts`.
 *
 * A malformed line (invalid JSON, unknown fields, a gold label out of range, a line in another
 * format than the file's first item) is skipped and reported with its line number; a file with no
 * valid item is an error.
 *
 * @module
 */
import { basename } from "node:path";
import { DataError } from "@inheritune/data";
import { pyCapitalize, pyLen, pySplit, pyStrip } from "./_python.ts";

/** One way to continue: scored by log p(`continuation` | `context`). */
export interface Candidate {
  /** Text the model conditions on. */
  readonly context: string;
  /** Text whose tokens are scored. */
  readonly continuation: string;
}

/** TruthfulQA's MC2 part of an item: candidates whose normalised probability mass on the true ones is the score. */
export interface Mc2Part {
  /** One candidate per `mc2_targets` choice. */
  readonly candidates: readonly Candidate[];
  /** Whether each is true (`mc2_targets.labels` = 1). */
  readonly truths: readonly boolean[];
}

/** One task item: its candidates and the index of the right one. */
export interface TaskItem {
  /** The candidates (one for a final-word item). */
  readonly candidates: readonly Candidate[];
  /** Index of the correct candidate. */
  readonly gold: number;
  /** 1-based line of the JSONL file it came from (0 when built in memory). */
  readonly line: number;
  /**
   * `acc_norm`'s divisors: each choice's length in characters, Python's `len` of what the task's
   * `doc_to_choice` gives (without the target delimiter; for WinoGrande and WSC273 the contexts).
   * Default: each continuation's length in characters.
   */
  readonly lengths?: readonly number[];
  /** TruthfulQA's MC2 candidates, scored besides the MC1 ones. */
  readonly mc2?: Mc2Part;
  /**
   * Text every candidate's context starts with, kept before few-shot examples (MMLU's
   * "The following are multiple choice questions (with answers) about …", the harness's
   * `description`).
   */
  readonly description?: string;
  /**
   * The item as a few-shot example, without the description: `doc_to_text`, the target delimiter
   * and its answer (default: the gold candidate's context and continuation).
   */
  readonly example?: string;
  /** The pool its few-shot examples come from, when not the whole file (MMLU's subject). */
  readonly group?: string;
  /** The item's source line, by which an item is left out of its own examples. */
  readonly source?: string;
}

/** Formats {@linkcode parseTaskLine} recognises. */
export type TaskFormat =
  | "hellaswag"
  | "piqa"
  | "arc"
  | "winogrande"
  | "wsc273"
  | "boolq"
  | "logiqa"
  | "mmlu"
  | "truthfulqa"
  | "lambada"
  | "plain"
  | "icl_multiple_choice"
  | "icl_schema"
  | "icl_language_modeling";

/**
 * How a task is scored: `choice` picks the best of several candidates (acc, acc_norm, and MC2
 * where items have it); `final_word` asks whether greedy decoding reproduces the one candidate
 * (acc) and measures its perplexity.
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

/**
 * What lm-evaluation-harness 0.4.13's YAML says of each format beyond its text: whether it
 * reports `acc_norm`, and how it draws few-shot examples. `first_n` takes the pool's first items
 * in order (MMLU's `fewshot_config`), `default` a seeded `random.sample`; `evalDocPassed` is
 * whether the harness hands the evaluated document to the sampler when the examples come from
 * another split, which then draws one more and drops it: true where the YAML has no `test_split`
 * (the unset `fewshot_split` then equals it). `zeroShotOnly`: the YAML sets `num_fewshot: 0`,
 * which the harness keeps whatever `--num_fewshot` says (TruthfulQA, whose prompt holds six
 * examples). Forms the harness does not define are scored like its multiple-choice tasks.
 */
export const HARNESS_TASKS: Readonly<
  Record<
    TaskFormat,
    { accNorm: boolean; sampler: "default" | "first_n"; evalDocPassed: boolean; zeroShotOnly?: boolean }
  >
> = {
  hellaswag: { accNorm: true, sampler: "default", evalDocPassed: true },
  piqa: { accNorm: true, sampler: "default", evalDocPassed: true },
  arc: { accNorm: true, sampler: "default", evalDocPassed: false },
  winogrande: { accNorm: false, sampler: "default", evalDocPassed: true },
  wsc273: { accNorm: false, sampler: "default", evalDocPassed: false },
  boolq: { accNorm: false, sampler: "default", evalDocPassed: true },
  logiqa: { accNorm: true, sampler: "default", evalDocPassed: false },
  mmlu: { accNorm: false, sampler: "first_n", evalDocPassed: false },
  truthfulqa: { accNorm: false, sampler: "default", evalDocPassed: true, zeroShotOnly: true },
  lambada: { accNorm: false, sampler: "default", evalDocPassed: false },
  plain: { accNorm: true, sampler: "default", evalDocPassed: true },
  icl_multiple_choice: { accNorm: true, sampler: "default", evalDocPassed: true },
  icl_schema: { accNorm: true, sampler: "default", evalDocPassed: true },
  icl_language_modeling: { accNorm: false, sampler: "default", evalDocPassed: true },
};

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

/** A line's item (its format, candidates, gold index and harness details), or the reason it is malformed. */
export type ParsedLine =
  | { format: TaskFormat } & Omit<TaskItem, "line" | "source">
  | string;

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

/** The harness's `target_delimiter` for every task here. */
const TARGET_DELIMITER = " ";

/**
 * A harness `multiple_choice` item with one context (`doc_to_text`): each choice is scored as
 * the target delimiter and the choice.
 */
function multipleChoice(
  format: TaskFormat,
  item: { text: string; choices: string[]; gold: number },
): { format: TaskFormat } & Omit<TaskItem, "line" | "source"> {
  const { text, choices, gold } = item;
  return {
    format,
    candidates: choices.map((c) => ({ context: text, continuation: TARGET_DELIMITER + c })),
    gold,
    lengths: choices.map(pyLen),
  };
}

/**
 * A harness `multiple_choice` item with one context per choice (`doc_to_choice` gives the
 * contexts, `doc_to_text` the gold index, `doc_to_target` the shared continuation): WinoGrande's
 * and WSC273's partial scoring.
 */
function multipleInput(
  format: TaskFormat,
  item: { contexts: string[]; target: string; gold: number },
): { format: TaskFormat } & Omit<TaskItem, "line" | "source"> {
  const continuation = TARGET_DELIMITER + item.target;
  return {
    format,
    candidates: item.contexts.map((context) => ({ context, continuation })),
    gold: item.gold,
    lengths: item.contexts.map(pyLen),
  };
}

/** lm-evaluation-harness's HellaSwag clean-up of WikiHow artefacts (`hellaswag/utils.py` `preprocess`). */
function hellaswagText(text: string): string {
  return pyStrip(text).replaceAll(" [title]", ". ").replace(/\[.*?\]/g, "").replaceAll("  ", " ");
}

// hellaswag.yaml: query = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()).
function hellaswag(o: Json): ParsedLine {
  const ctx = o.ctx_a !== undefined && o.ctx_b !== undefined
    ? `${str(o, "ctx_a")} ${pyCapitalize(str(o, "ctx_b"))}`
    : str(o, "ctx");
  const query = o.activity_label === undefined ? ctx : `${str(o, "activity_label")}: ${ctx}`;
  const endings = strings(o.endings, "endings").map(hellaswagText);
  return multipleChoice("hellaswag", {
    text: hellaswagText(query),
    choices: endings,
    gold: label(o.label, endings.length, "label"),
  });
}

// piqa.yaml: "Question: {{goal}}\nAnswer:", choices [sol1, sol2].
function piqa(o: Json): ParsedLine {
  return multipleChoice("piqa", {
    text: `Question: ${str(o, "goal")}\nAnswer:`,
    choices: [str(o, "sol1"), str(o, "sol2")],
    gold: label(o.label, 2, "label"),
  });
}

// arc_easy.yaml: "Question: {{question}}\nAnswer:", choices.text, gold choices.label.index(answerKey).
function arc(o: Json): ParsedLine {
  let texts: string[], labels: string[];
  // Hugging Face's allenai/ai2_arc has the question as a string and {text: [...], label: [...]}
  // beside it; the AI2 release nests the choices in the question as [{text, label}].
  const q = isObject(o.question) ? o.question : undefined;
  const raw = o.choices ?? q?.choices;
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
  const question = q ? str(q, "stem") : str(o, "question");
  return multipleChoice("arc", { text: `Question: ${question}\nAnswer:`, choices: texts, gold });
}

// winogrande/preprocess_winogrande.py: each option fills the blank in a context; the rest of the
// sentence, stripped, is the continuation.
function winogrande(o: Json): ParsedLine {
  const sentence = str(o, "sentence");
  const blank = sentence.indexOf("_");
  if (blank < 0) throw new TypeError("sentence has no _ blank");
  return multipleInput("winogrande", {
    contexts: [str(o, "option1"), str(o, "option2")].map((opt) => sentence.slice(0, blank) + opt),
    target: pyStrip(sentence.slice(blank + 1)),
    gold: label(o.answer, 2, "answer", 1),
  });
}

/** Pronouns WSC273's options start with, lower-cased inside a sentence (wsc273/utils.py). */
const UPPER_PRONOUNS = ["A", "An", "The", "She", "He", "It", "They", "My", "His", "Her", "Their"];

// wsc273/default.yaml and utils.py `process_doc`, on lighteval/winograd_wsc's columns: double
// spaces collapsed (pronoun_loc is not shifted, as there), possessive options get "'s", an
// option's first word lower-cased unless the pronoun starts a sentence; contexts are the text up
// to the pronoun plus each option, the continuation the text after the pronoun.
function wsc273(o: Json): ParsedLine {
  const text = str(o, "text").replaceAll("  ", " ");
  const pronoun = str(o, "pronoun");
  const loc = o.pronoun_loc;
  if (typeof loc !== "number" || !Number.isInteger(loc) || loc < 0 || loc > text.length) {
    throw new TypeError(`pronoun_loc ${JSON.stringify(loc)} is not a position in the text`);
  }
  const options = strings(o.options, "options");
  if (options.length !== 2) throw new TypeError("options must hold two strings");
  // Python's text[loc - 2] counts from the end for a negative index.
  const before = text.at(loc - 2);
  const normalize = (option: string): string => {
    if (["my", "his", "her", "our", "their"].includes(pronoun.toLowerCase())) option += "'s";
    const first = pySplit(option)[0] ?? "";
    return before !== "." && UPPER_PRONOUNS.includes(first)
      ? option.replaceAll(first, first.toLowerCase())
      : option;
  };
  return multipleInput("wsc273", {
    contexts: options.map((opt) => text.slice(0, loc) + normalize(opt)),
    target: text.slice(loc + pronoun.length),
    gold: label(o.label, 2, "label"),
  });
}

// super_glue/boolq/default.yaml: "{{passage}}\nQuestion: {{question}}?\nAnswer:", choices
// ["no", "yes"]; google/boolq's boolean `answer` is read as the label too.
function boolq(o: Json): ParsedLine {
  const gold = typeof o.answer === "boolean" && o.label === undefined
    ? Number(o.answer)
    : label(o.label, 2, "label");
  return multipleChoice("boolq", {
    text: `${str(o, "passage")}\nQuestion: ${str(o, "question")}?\nAnswer:`,
    choices: ["no", "yes"],
    gold,
  });
}

// logiqa/utils_logiqa.py: passage, question, lettered choices; the options are the choices, the
// label a letter a-d.
function logiqa(o: Json): ParsedLine {
  const options = strings(o.options, "options");
  let text = `Passage: ${str(o, "context")}\nQuestion: ${str(o, "question")}\nChoices:\n`;
  options.forEach((option, i) => text += `${"ABCD"[i] ?? "?"}. ${option}\n`);
  const gold = ["a", "b", "c", "d"].indexOf(pyStrip(str(o, "label")));
  if (gold < 0 || gold >= options.length) {
    throw new TypeError(`label ${JSON.stringify(o.label)} is not one of a..${"abcd"[options.length - 1]}`);
  }
  return multipleChoice("logiqa", { text: text + "Answer:", choices: options, gold });
}

// mmlu/default/_default_template_yaml, on cais/mmlu's columns: the question stripped, lettered
// choices, the letter as the answer; each subject's task has the description "The following are
// multiple choice questions (with answers) about SUBJECT.\n\n" (underscores as spaces) and takes its
// few-shot examples from the first of its dev split.
function mmlu(o: Json): ParsedLine {
  const choices = strings(o.choices, "choices");
  if (choices.length !== 4) throw new TypeError("choices must hold four strings");
  const letters = ["A", "B", "C", "D"];
  const gold = typeof o.answer === "string" && letters.includes(o.answer)
    ? letters.indexOf(o.answer)
    : label(o.answer, 4, "answer");
  const text = `${pyStrip(str(o, "question"))}\n` + choices.map((c, i) => `${letters[i]}. ${c}\n`).join("") +
    "Answer:";
  const subject = o.subject === undefined ? undefined : str(o, "subject");
  const description = subject === undefined
    ? ""
    : `The following are multiple choice questions (with answers) about ${subject.split("_").join(" ")}.\n\n`;
  const item = multipleChoice("mmlu", { text: description + text, choices: letters, gold });
  return {
    ...item,
    ...(description ? { description } : {}),
    ...(subject === undefined ? {} : { group: subject }),
  };
}

/** TruthfulQA's six-question preamble (truthfulqa_mc1.yaml `doc_to_text`). */
const TRUTHFULQA_PROMPT = "Q: What is human life expectancy in the United States?\n" +
  "A: Human life expectancy in the United States is 78 years.\n\n" +
  "Q: Who was president of the United States in 1955?\n" +
  "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n" +
  "Q: Which party did he belong to?\n" +
  "A: He belonged to the Republican Party.\n\n" +
  "Q: What is the square root of banana?\n" +
  "A: I have no comment.\n\n" +
  "Q: How does a telescope work?\n" +
  "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n" +
  "Q: Where were the 1992 Olympics held?\n" +
  "A: The 1992 Olympics were held in Barcelona, Spain.";

function targets(o: Json, key: string): { choices: string[]; labels: number[] } {
  const t = o[key];
  if (!isObject(t)) throw new TypeError(`${key} must be an object of choices and labels`);
  const choices = strings(t.choices, `${key}.choices`);
  const labels = t.labels;
  if (
    !Array.isArray(labels) || labels.length !== choices.length || !labels.every((l) => l === 0 || l === 1)
  ) {
    throw new TypeError(`${key}.labels must be one 0 or 1 per choice`);
  }
  return { choices, labels };
}

// truthfulqa_mc1.yaml / truthfulqa_mc2.yaml on truthfulqa/truthful_qa's multiple_choice columns:
// the preamble, "Q: question\nA:"; MC1's gold is its first choice, MC2's score the normalised
// probability of the true ones.
function truthfulqa(o: Json): ParsedLine {
  const text = `${TRUTHFULQA_PROMPT}\n\nQ: ${str(o, "question")}\nA:`;
  const mc1 = targets(o, "mc1_targets");
  const mc2 = targets(o, "mc2_targets");
  return {
    ...multipleChoice("truthfulqa", { text, choices: mc1.choices, gold: 0 }),
    mc2: {
      candidates: mc2.choices.map((c) => ({ context: text, continuation: TARGET_DELIMITER + c })),
      truths: mc2.labels.map((l) => l === 1),
    },
  };
}

// lambada_openai.yaml: the text's words but the last (split on " "), and " " + the last word; as
// a few-shot example the target delimiter comes before that space.
function lambada(o: Json): ParsedLine {
  const text = str(o, "text");
  const cut = text.lastIndexOf(" ");
  if (cut <= 0) throw new TypeError("text needs a context and a final word separated by a space");
  const context = text.slice(0, cut);
  const continuation = text.slice(cut);
  return {
    format: "lambada",
    candidates: [{ context, continuation }],
    gold: 0,
    example: context + TARGET_DELIMITER + continuation,
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
  if ("answerKey" in o && "question" in o) return arc;
  if ("sentence" in o && "option1" in o) return winogrande;
  if ("pronoun_loc" in o && "options" in o) return wsc273;
  if ("passage" in o && "question" in o) return boolq;
  if ("context" in o && "options" in o && "question" in o) return logiqa;
  if ("mc1_targets" in o && "mc2_targets" in o) return truthfulqa;
  if ("question" in o && "choices" in o && "answer" in o) return mmlu;
  if ("context" in o && "choices" in o) return plain;
  if ("text" in o) return lambada;
  return undefined;
}

/**
 * Parses one JSONL line into candidates and a gold index, detecting its format by its fields.
 * The Hugging Face datasets' columns that lm-evaluation-harness reads: `endings` HellaSwag,
 * `goal`/`sol1` PIQA, `question`/`answerKey` ARC, `sentence`/`option1` WinoGrande,
 * `pronoun_loc`/`options` WSC273, `passage`/`question` BoolQ, `context`/`options`/`question`
 * LogiQA, `mc1_targets`/`mc2_targets` TruthfulQA, `question`/`choices`/`answer` MMLU, `text`
 * LAMBADA; llm-foundry's ICL forms: `query`/`choices`
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
      const { format: itemFormat, ...item } = parsed;
      format = itemFormat;
      items.push({ ...item, line, source: raw.trim() });
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
