/**
 * The built-in offline task: a seeded cloze set made from held-out text, so that zero-shot
 * evaluation needs no downloaded benchmark. Two kinds:
 *
 * - `sentence` ("cloze"): given up to two sentences of a paragraph, pick the sentence that
 *   follows among distractor sentences drawn from the same text, of similar length;
 * - `word` ("cloze-word"): given a paragraph's sentences up to a sentence's final word, pick that
 *   word among final words of other sentences.
 *
 * Items are plain `{context, choices, gold}` tasks; the same text, kind, seed and count give the
 * same items on every machine.
 *
 * @module
 */
import { Rng } from "@inheritune/data";
import type { Tokenizer, TokenSource } from "@inheritune/data";
import type { Task, TaskItem } from "./tasks.ts";

/** Kinds of cloze item. */
export type ClozeKind = "sentence" | "word";

/** Options of {@linkcode buildCloze}. */
export interface ClozeOptions {
  /** Item kind (default "sentence"). */
  kind?: ClozeKind;
  /** Items to make, fewer when the text has fewer eligible sentences (default 200). */
  items?: number;
  /** Choices per item, gold included (default 4). */
  choices?: number;
  /** Seed of the item, distractor and gold-position draws (default 1234). */
  seed?: number;
  /** Longest answer sentence in characters (default 60), so that small contexts hold it. */
  maxChars?: number;
}

/** Defaults of {@linkcode ClozeOptions}. */
export const CLOZE_DEFAULTS: Readonly<Required<ClozeOptions>> = {
  kind: "sentence",
  items: 200,
  choices: 4,
  maxChars: 60,
  seed: 1234,
};

/** Task names of the built-in cloze kinds. */
export const CLOZE_TASKS: Readonly<Record<string, ClozeKind>> = { cloze: "sentence", "cloze-word": "word" };

/** Shortest answer sentence, in characters: long enough to say something. */
const MIN_SENTENCE_CHARS = 16;
/** Preceding sentences given as context. */
const CONTEXT_SENTENCES = 2;
/** Words a `word` item's sentence needs, so that its context constrains the final word. */
const MIN_WORDS = 6;
/** Tries to find a distractor of similar length before taking any. */
const SIMILAR_TRIES = 50;

/** Sentences of each paragraph (split at blank lines, then after `.`, `!` or `?` before a capital). */
export function splitSentences(text: string): string[][] {
  return text.split(/\n\s*\n/)
    .map((p) => p.replace(/\s+/g, " ").trim())
    .filter((p) => p.length > 0)
    .map((p) => p.split(/(?<=[.!?]["')\]]*)\s+(?=["'(\[]?[A-Z])/));
}

const FINAL_WORD = /^(.*\S)\s+([A-Za-z]+)([.!?]["')\]]*)$/;

/** An answer slot: the context before it and the text to pick. */
interface Slot {
  context: string;
  answer: string;
}

function slots(paragraphs: string[][], kind: ClozeKind, maxChars: number): Slot[] {
  const out: Slot[] = [];
  for (const sentences of paragraphs) {
    for (let j = 0; j < sentences.length; j++) {
      const s = sentences[j];
      const before = sentences.slice(Math.max(0, j - CONTEXT_SENTENCES), j).join(" ");
      if (kind === "sentence") {
        if (j > 0 && s.length >= MIN_SENTENCE_CHARS && s.length <= maxChars) {
          out.push({ context: before, answer: s });
        }
        continue;
      }
      const m = FINAL_WORD.exec(s);
      if (m && s.split(" ").length >= MIN_WORDS) {
        out.push({ context: before ? `${before} ${m[1]}` : m[1], answer: m[2] });
      }
    }
  }
  return out;
}

/**
 * A seeded cloze task from `text`: `options.items` answer slots drawn without replacement (answer
 * sentences of 16 to `maxChars` characters), each
 * with `choices - 1` distinct distractors (other slots' answers, preferring ones within ±50% of
 * the answer's length) and the answer at a random position. Choices carry a leading space.
 */
export function buildCloze(text: string, options: ClozeOptions = {}): Task {
  const { kind, items, choices, seed, maxChars } = { ...CLOZE_DEFAULTS, ...options };
  if (!Number.isInteger(choices) || choices < 2) {
    throw new RangeError(`a cloze item needs ≥ 2 choices, got ${choices}`);
  }
  const pool = slots(splitSentences(text), kind, maxChars);
  const answers = [...new Set(pool.map((s) => s.answer))];
  const rng = new Rng(seed);
  const int = (n: number): number => Math.floor(rng.uniform() * n);
  const order = pool.map((_, i) => i);
  const out: TaskItem[] = [];
  if (answers.length < choices) return { name: taskName(kind), format: "plain", kind: "choice", items: out };
  for (let i = 0; i < order.length && out.length < items; i++) {
    const j = i + int(order.length - i);
    [order[i], order[j]] = [order[j], order[i]];
    const slot = pool[order[i]];
    const picked = new Set([slot.answer]);
    for (let tries = 0; picked.size < choices; tries++) {
      const d = answers[int(answers.length)];
      const similar = Math.abs(d.length - slot.answer.length) <= slot.answer.length / 2;
      if (similar || tries >= SIMILAR_TRIES) picked.add(d);
    }
    const distractors = [...picked].slice(1);
    const gold = int(choices);
    distractors.splice(gold, 0, slot.answer);
    out.push({
      candidates: distractors.map((c) => ({ context: slot.context, continuation: " " + c })),
      gold,
      line: out.length + 1, // its line in the JSONL that taskToJsonl writes
    });
  }
  return { name: taskName(kind), format: "plain", kind: "choice", items: out };
}

function taskName(kind: ClozeKind): string {
  return Object.keys(CLOZE_TASKS).find((k) => CLOZE_TASKS[k] === kind)!;
}

/** Most tokens of a split decoded for a cloze set by default: ample for 200 items. */
const CLOZE_TOKENS = 1 << 20;

/**
 * {@linkcode buildCloze} on the text of a split's first `maxTokens` tokens (default 2^20),
 * decoded with the split's tokenizer; documents (split at end-of-text tokens) are separate
 * paragraphs.
 */
export function buildClozeFromSplit(
  source: TokenSource,
  tokenizer: Tokenizer,
  options: ClozeOptions & { maxTokens?: number } = {},
): Task {
  const tokens = source.read(0, Math.min(source.length, options.maxTokens ?? CLOZE_TOKENS));
  const docs: string[] = [];
  let start = 0;
  for (let i = 0; i <= tokens.length; i++) {
    if (i < tokens.length && tokens[i] !== tokenizer.eotToken) continue;
    if (i > start) docs.push(tokenizer.decode(tokens.subarray(start, i)));
    start = i + 1;
  }
  return buildCloze(docs.join("\n\n"), options);
}
