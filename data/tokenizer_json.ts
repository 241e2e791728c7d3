/**
 * Hugging Face `tokenizer.json` tokenizers (byte-level BPE as in GPT-2, Llama 3 and Qwen; BPE with
 * byte fallback as in Llama 2), run by `@huggingface/tokenizers` (Tokenizers.js, pure TypeScript,
 * the tokenizer of Transformers.js): its normalizers, pre-tokenizers, models and decoders are the
 * Rust library's, so this module only adapts it to {@linkcode Tokenizer}. Also builds a
 * `tokenizer.json` in memory for a GGUF byte-level BPE vocabulary (`tokenizer.ggml.model` =
 * "gpt2": tokens and merges) and for a SentencePiece vocabulary (as transformers' Llama converter
 * does, plus the whitespace rules it leaves out).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { DataError } from "./errors.ts";
import { PieceType, type SentencePieceModel } from "./sentencepiece.ts";
import type { EncodeOptions, Tokenizer } from "./tokenizer_types.ts";
import { letterOrDigitBefore } from "./_words.ts";

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** JSON with object keys sorted, so that equal definitions hash equally. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (isObject(v)) {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

/** Every object inside `v` (itself included), depth first. */
function* objects(v: unknown): Generator<Json> {
  if (Array.isArray(v)) { for (const x of v) yield* objects(x); }
  else if (isObject(v)) {
    yield v;
    for (const x of Object.values(v)) yield* objects(x);
  }
}

/** GPT-2's byte-to-character table of byte-level BPE, and its inverse. */
function byteLevelTable(): { chars: string[]; bytes: Map<string, number> } {
  const printable = (b: number): boolean => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
  const chars: string[] = [];
  let shifted = 0;
  for (let b = 0; b < 256; b++) chars[b] = String.fromCodePoint(printable(b) ? b : 256 + shifted++);
  return { chars, bytes: new Map(chars.map((c, b) => [c, b])) };
}

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}

/**
 * Why the ids of `model.vocab` (an object of token → id; a Unigram list has none) and
 * `added_tokens` cannot index one vocabulary of their entries' number, or undefined. Checked
 * before Tokenizers.js sees them: it fills arrays up to the largest id, so an id of 10⁹ from a
 * corrupt file would spin for a minute before failing.
 */
function idProblem(model: Json, added: readonly AddedToken[]): string | undefined {
  const entries = isObject(model.vocab) ? Object.entries(model.vocab) : [];
  const size = (Array.isArray(model.vocab) ? model.vocab.length : entries.length) + added.length;
  const outside = (id: unknown): boolean =>
    !Number.isInteger(id) || (id as number) < 0 || (id as number) >= size;
  for (const [token, id] of entries) {
    if (outside(id)) {
      return `model.vocab id ${id} of ${JSON.stringify(token)} is outside the vocabulary of ${size} tokens`;
    }
  }
  for (const t of added) {
    if (outside(t?.id)) return `added_tokens id ${t?.id} is outside the vocabulary of ${size} tokens`;
  }
}

/** Text at the start of a continuation's encoding, whose ids are dropped again. */
const ANCHOR = "a";
/** Characters encoded per call at most, about, so that BPE over a text without pre-tokenizer stays fast. */
const SEGMENT = 4096;

/**
 * A {@linkcode Tokenizer} running the Hugging Face `tokenizer.json` definition `json`. Special
 * added tokens are not matched in text (text is plain text, as llm.c's `split_special_tokens`);
 * `eotToken` is the BOS its post-processor adds to a single sequence (Llama 2 and 3), else its
 * `<|endoftext|>` (GPT-2, Qwen), else none.
 *
 * @throws {DataError} when `json` is not a tokenizer definition Tokenizers.js can run.
 */
export function jsonTokenizer(json: unknown): Tokenizer {
  if (!isObject(json) || !isObject(json.model)) throw new DataError("not a tokenizer.json: no model object");
  const model = json.model;
  const added: AddedToken[] = Array.isArray(json.added_tokens) ? json.added_tokens as AddedToken[] : [];
  const problem = idProblem(model, added);
  if (problem) throw new DataError(problem);
  let full: HfTokenizer;
  let plain: HfTokenizer;
  try {
    full = new HfTokenizer(json, {});
    plain = new HfTokenizer({ ...json, added_tokens: added.filter((t) => !t.special) }, {});
  } catch (e) {
    throw new DataError(
      `not a usable tokenizer.json (${model.type}): ${(e as Error).message.split("\n")[0]}`,
    );
  }
  const vocab = full.get_vocab(true);
  let vocabSize = 0;
  for (const id of vocab.values()) vocabSize = Math.max(vocabSize, id + 1);
  for (const t of added) vocabSize = Math.max(vocabSize, t.id + 1);
  if (vocabSize === 0) throw new DataError("not a tokenizer.json: empty vocabulary");

  // The BOS a template post-processor puts first in a single sequence.
  let bos: number | undefined;
  for (const o of objects(json.post_processor)) {
    if (o.type !== "TemplateProcessing" || !Array.isArray(o.single)) continue;
    const first = o.single[0] as { SpecialToken?: { id: string } } | undefined;
    const special = isObject(o.special_tokens) ? o.special_tokens : {};
    const entry = first?.SpecialToken ? special[first.SpecialToken.id] as { ids?: number[] } : undefined;
    bos ??= entry?.ids?.[0];
  }
  const named = (...names: string[]): number | undefined =>
    added.find((t) => t.special && names.includes(t.content))?.id;
  const eos = named("</s>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "<|im_end|>");
  const eot = bos ?? named("<|endoftext|>");

  // Whether some token joins a letter or digit to a space after it (text decoded from byte-level).
  const byteLevel = [...objects(json.decoder), ...objects(json.pre_tokenizer)].some((o) =>
    o.type === "ByteLevel"
  );
  const table = byteLevelTable();
  const surface = (token: string): string => {
    if (!byteLevel) return token.replaceAll("\u2581", " ");
    const bytes = Array.from(token, (c) => table.bytes.get(c) ?? 0x3f);
    return new TextDecoder().decode(Uint8Array.from(bytes));
  };
  const joins = /[\p{L}\p{N}] /u;
  const splitsAtSpaces = ![...vocab.keys()].some((t) => joins.test(surface(t)));

  const { truncation: _t, padding: _p, version: _v, ...definition } = json;
  const hash = createHash("sha256").update(canonical({ kind: "tokenizer.json", ...definition })).digest(
    "hex",
  );
  const raw = (text: string): number[] => plain.encode(text, { add_special_tokens: false }).ids;
  const anchorIds = raw(ANCHOR);

  /** Ids of `text` after a letter: the anchor's ids, checked and dropped. */
  const continuation = (text: string): number[] => {
    const ids = raw(ANCHOR + text);
    const ok = anchorIds.every((id, i) => ids[i] === id);
    return ok ? ids.slice(anchorIds.length) : raw(text);
  };

  function encode(text: string, options: EncodeOptions = {}): number[] {
    const out: number[] = [];
    let continuing = options.continuing === true;
    for (let from = 0; from < text.length;) {
      let to = text.length;
      if (splitsAtSpaces && text.length - from > SEGMENT) {
        // The first word start past SEGMENT characters, if any.
        to = from + SEGMENT;
        while (to < text.length && !(text.charCodeAt(to) === 32 && letterOrDigitBefore(text, to))) to++;
      }
      const piece = text.slice(from, to);
      for (const id of continuing ? continuation(piece) : raw(piece)) out.push(id);
      continuing = true;
      from = to;
    }
    return out;
  }

  return {
    name: "tokenizer.json",
    kind: "tokenizer.json",
    vocabSize,
    eotToken: eot,
    bosToken: bos,
    eosToken: eos,
    hash,
    splitsAtSpaces,
    definition: () => ({ file: "tokenizer.json", bytes: new TextEncoder().encode(JSON.stringify(json)) }),
    encode,
    decode: (ids: Iterable<number>): string => {
      const list = [...ids];
      return list.length === 0
        ? ""
        : full.decode(list, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
    },
  };
}

/** Pre-tokenizer regexes of GGUF's `tokenizer.ggml.pre` names (llama.cpp's), as Split patterns. */
const PRE_TOKENIZER_REGEX: Record<string, string | null> = {
  default: null,
  gpt2: null,
  "llama-bpe":
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  qwen2:
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

/** A byte-level BPE vocabulary as GGUF stores it (`tokenizer.ggml.model` = "gpt2"). */
export interface ByteLevelBpeModel {
  /** Tokens by id, in byte-level characters ("Ġ" for a space). */
  readonly tokens: readonly string[];
  /** Merge rules in priority order, each "left right". */
  readonly merges: readonly string[];
  /** {@linkcode PieceType} of each token; control tokens become special added tokens. */
  readonly types?: readonly number[];
  /** Beginning-of-sequence id. */
  readonly bosId?: number;
  /** End-of-sequence id. */
  readonly eosId?: number;
  /** Whether a BOS starts every sequence (GGUF `tokenizer.ggml.add_bos_token`, default false). */
  readonly addBos?: boolean;
  /** Pre-tokenizer name, GGUF `tokenizer.ggml.pre`: "gpt2" (default), "llama-bpe" or "qwen2". */
  readonly pre?: string;
}

/** The `tokenizer.json` definition of a byte-level BPE vocabulary with merges. */
export function byteLevelBpeJson(model: ByteLevelBpeModel): Json {
  const pre = model.pre ?? "gpt2";
  if (!Object.hasOwn(PRE_TOKENIZER_REGEX, pre)) {
    throw new DataError(
      `byte-level BPE pre-tokenizer ${JSON.stringify(pre)} is not supported (known: ${
        Object.keys(PRE_TOKENIZER_REGEX).join(", ")
      })`,
    );
  }
  const regex = PRE_TOKENIZER_REGEX[pre];
  const vocab: Record<string, number> = {};
  model.tokens.forEach((t, id) => vocab[t] ??= id);
  const added: AddedToken[] = [];
  model.tokens.forEach((content, id) => {
    const type = model.types?.[id];
    if (type === PieceType.control || type === PieceType.userDefined) {
      added.push({ id, content, special: type === PieceType.control });
    }
  });
  const byteLevel = (useRegex: boolean): Json => ({
    type: "ByteLevel",
    add_prefix_space: false,
    trim_offsets: true,
    use_regex: useRegex,
  });
  const bos = model.addBos && model.bosId !== undefined ? model.tokens[model.bosId] : undefined;
  return {
    version: "1.0",
    added_tokens: added.map((t) => ({
      ...t,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
    })),
    normalizer: null,
    pre_tokenizer: regex === null ? byteLevel(true) : {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false },
        byteLevel(false),
      ],
    },
    post_processor: bos === undefined ? null : template(bos, model.bosId!),
    decoder: byteLevel(true),
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: model.merges.map((m) => {
        const i = m.indexOf(" ", 1);
        return [m.slice(0, i), m.slice(i + 1)];
      }),
    },
  };
}

function template(bos: string, id: number): Json {
  return {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
    pair: [
      { SpecialToken: { id: bos, type_id: 0 } },
      { Sequence: { id: "A", type_id: 0 } },
      { SpecialToken: { id: bos, type_id: 1 } },
      { Sequence: { id: "B", type_id: 1 } },
    ],
    special_tokens: { [bos]: { id: bos, ids: [id], tokens: [bos] } },
  };
}

/**
 * A {@linkcode Tokenizer} for a byte-level BPE vocabulary with merges (GGUF "gpt2" models), run
 * through the same `tokenizer.json` path as Hugging Face files.
 *
 * @throws {DataError} for an unknown pre-tokenizer name or a vocabulary Tokenizers.js rejects.
 */
export function byteLevelBpeTokenizer(model: ByteLevelBpeModel): Tokenizer {
  return jsonTokenizer(byteLevelBpeJson(model));
}

/**
 * The Llama-2-style `tokenizer.json` of a SentencePiece BPE vocabulary: the pieces as vocabulary,
 * merges ordered by the merged piece's score (transformers' `SentencePieceExtractor`), byte
 * fallback, and normalizers for the dummy prefix and, unlike transformers' converter, SentencePiece's
 * removal of extra spaces.
 */
export function sentencePieceToJson(model: SentencePieceModel): Json {
  const vocab: Record<string, number> = {};
  model.pieces.forEach((p, id) => vocab[p] ??= id);
  const mergeable = (id: number | undefined): boolean =>
    id !== undefined &&
    [PieceType.normal, PieceType.userDefined, PieceType.unused].includes(model.types[id] as 1 | 4 | 5);
  const merges: { l: string; r: string; score: number; order: number }[] = [];
  model.pieces.forEach((piece, id) => {
    if (!mergeable(id)) return;
    const chars = [...piece];
    const local: { l: string; r: string }[] = [];
    for (let i = 1; i < chars.length; i++) {
      const l = chars.slice(0, i).join("");
      const r = chars.slice(i).join("");
      if (mergeable(vocab[l]) && mergeable(vocab[r])) local.push({ l, r });
    }
    local.sort((a, b) => vocab[a.l] - vocab[b.l] || vocab[a.r] - vocab[b.r]);
    for (const m of local) merges.push({ ...m, score: model.scores[id], order: merges.length });
  });
  merges.sort((a, b) => b.score - a.score || a.order - b.order);
  const special = (id: number): boolean =>
    [PieceType.control, PieceType.unknown].includes(model.types[id] as 2 | 3);
  const normalizers: Json[] = [];
  if (model.removeExtraWhitespaces) {
    normalizers.push(
      { type: "Replace", pattern: { Regex: " {2,}" }, content: " " },
      { type: "Replace", pattern: { Regex: "\\A +| +\\z" }, content: "" },
    );
  }
  if (model.addDummyPrefix) normalizers.push({ type: "Prepend", prepend: "\u2581" });
  if (model.escapeWhitespaces) {
    normalizers.push({ type: "Replace", pattern: { String: " " }, content: "\u2581" });
  }
  const bos = model.bosId >= 0 ? model.pieces[model.bosId] : undefined;
  return {
    version: "1.0",
    added_tokens: model.pieces.flatMap((content, id) =>
      special(id) || model.types[id] === PieceType.userDefined
        ? [{
          id,
          content,
          single_word: false,
          lstrip: false,
          rstrip: false,
          normalized: false,
          special: special(id),
        }]
        : []
    ),
    normalizer: normalizers.length > 0 ? { type: "Sequence", normalizers } : null,
    pre_tokenizer: null,
    post_processor: bos === undefined ? null : template(bos, model.bosId),
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "\u2581" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        ...(model.addDummyPrefix ? [{ type: "Strip", content: " ", start: 1, stop: 0 }] : []),
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: model.pieces[model.unkId],
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: model.byteFallback,
      ignore_merges: false,
      vocab,
      merges: merges.map((m) => [m.l, m.r]),
    },
  };
}
