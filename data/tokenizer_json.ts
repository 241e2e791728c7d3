/**
 * Hugging Face `tokenizer.json` tokenizers (byte-level BPE as in GPT-2, Llama 3 and Qwen; BPE with
 * byte fallback as in Llama 2), run by `@huggingface/tokenizers` (Tokenizers.js, pure TypeScript,
 * the tokenizer of Transformers.js): its normalizers, pre-tokenizers, models and decoders are the
 * Rust library's, so this module only adapts it to {@linkcode Tokenizer} (and hands it the two
 * pre-tokenizer steps it reads differently as equivalents it reads alike). Definitions of the
 * common byte-level BPE shape encode on `_byte_level_bpe.ts` instead, several times faster with the
 * same ids; Tokenizers.js still decodes them. Also builds a
 * `tokenizer.json` in memory for a GGUF byte-level BPE vocabulary (`tokenizer.ggml.model` =
 * "gpt2": tokens, merges and llama.cpp's pre-tokenizer of its `tokenizer.ggml.pre` name) and for
 * a SentencePiece vocabulary (as transformers' Llama converter does, plus the whitespace rules it
 * leaves out).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { DataError } from "./errors.ts";
import { PieceType, type SentencePieceModel } from "./sentencepiece.ts";
import type { EncodeOptions, Tokenizer } from "./tokenizer_types.ts";
import { letterOrDigitBefore } from "./_words.ts";
import { CHAR_BYTES } from "./_byte_level.ts";
import { byteLevelBpeEncoder, type ByteLevelBpeSpec, preTokenize } from "./_byte_level_bpe.ts";

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

/**
 * Pre-tokenizer `pre` with the steps Tokenizers.js reads differently from the Rust library written
 * as equivalents it reads alike: `Digits` (JavaScript's `\d` is ASCII; Rust splits every
 * `char::is_numeric`, Unicode's N) as a split on `\p{N}`, and `ByteLevel`'s own regex (JavaScript's
 * `\s`, unlike Rust's, has U+FEFF and lacks U+0085) as GPT-2's regex in a `Split`, whose `\s`
 * Tokenizers.js rewrites to Unicode's White_Space.
 */
function asTokenizersJsReads(pre: unknown): unknown {
  if (!isObject(pre)) return pre;
  if (pre.type === "Sequence" && Array.isArray(pre.pretokenizers)) {
    return { ...pre, pretokenizers: pre.pretokenizers.map(asTokenizersJsReads) };
  }
  const split = (regex: string): Json => ({
    type: "Split",
    pattern: { Regex: regex },
    behavior: "Isolated",
    invert: false,
  });
  if (pre.type === "Digits") return split(pre.individual_digits === true ? "\\p{N}" : "\\p{N}+");
  if (pre.type === "ByteLevel" && pre.use_regex !== false && pre.add_prefix_space !== true) {
    return { type: "Sequence", pretokenizers: [split(GPT2_SPLIT), { ...pre, use_regex: false }] };
  }
  return pre;
}

/** Pre-tokenizer `pre` as a list of steps, nested sequences flattened. */
function preSteps(pre: unknown): unknown[] {
  if (isObject(pre) && pre.type === "Sequence" && Array.isArray(pre.pretokenizers)) {
    return pre.pretokenizers.flatMap(preSteps);
  }
  return pre === null || pre === undefined ? [] : [pre];
}

/**
 * The JavaScript regex of Oniguruma `pattern` (as the Rust library reads it): `\s` and `\S` as
 * Unicode's White_Space; undefined for an escape beyond the few these tokenizers use.
 */
function jsRegex(pattern: string): RegExp | undefined {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] !== "\\") {
      out += pattern[i];
      continue;
    }
    const next = pattern[++i] ?? "";
    if (next === "s" || next === "S") out += next === "s" ? "\\p{White_Space}" : "\\P{White_Space}";
    else if ("pPrntfv\\$^.|?*+()[]{}-/".includes(next) && next !== "") out += "\\" + next;
    else return undefined;
  }
  try {
    return new RegExp(out, "gu");
  } catch {
    return undefined;
  }
}

/**
 * The regexes of pre-tokenizer `pre` (as {@linkcode asTokenizersJsReads} writes it) when it is
 * regex splits isolating their matches and then `ByteLevel` without its own regex; else undefined.
 */
function splitRegexes(pre: unknown): RegExp[] | undefined {
  const steps = preSteps(pre);
  const last = steps.pop();
  if (
    !isObject(last) || last.type !== "ByteLevel" || last.add_prefix_space === true || last.use_regex !== false
  ) {
    return undefined;
  }
  const splits: RegExp[] = [];
  for (const step of steps) {
    const ok = isObject(step) && step.type === "Split" && step.behavior === "Isolated" &&
      step.invert !== true &&
      isObject(step.pattern) && typeof step.pattern.Regex === "string";
    const regex = ok ? jsRegex((step.pattern as Json).Regex as string) : undefined;
    if (!regex) return undefined;
    splits.push(regex);
  }
  return splits;
}

/**
 * The byte-level BPE definition of `json` for the fast encoder (`_byte_level_bpe.ts`), or
 * undefined when `json` has another shape: a normalizer other than NFC, pre-tokenizer steps other
 * than regex splits then `ByteLevel`, BPE options that change merging, or added tokens matched in
 * text (non-special ones), all of which Tokenizers.js runs instead.
 */
function byteLevelBpeSpec(json: Json, pre: unknown): ByteLevelBpeSpec | undefined {
  const model = json.model;
  if (!isObject(model) || model.type !== "BPE" || !isObject(model.vocab) || !Array.isArray(model.merges)) {
    return undefined;
  }
  const plainMerging = (model.dropout ?? null) === null && (model.continuing_subword_prefix ?? "") === "" &&
    (model.end_of_word_suffix ?? "") === "" && model.byte_fallback !== true;
  const added = Array.isArray(json.added_tokens) ? json.added_tokens as AddedToken[] : [];
  const normalizer = json.normalizer ?? null;
  const nfc = isObject(normalizer) && normalizer.type === "NFC";
  if (!plainMerging || added.some((t) => !t.special) || (normalizer !== null && !nfc)) return undefined;
  const splits = splitRegexes(pre);
  if (!splits) return undefined;
  const vocab = new Map<string, number>();
  for (const [token, id] of Object.entries(model.vocab)) {
    if (typeof id !== "number") return undefined;
    vocab.set(token, id);
  }
  const merges: [string, string][] = [];
  for (const m of model.merges) {
    if (typeof m === "string") {
      const i = m.indexOf(" ", 1);
      if (i < 0) return undefined;
      merges.push([m.slice(0, i), m.slice(i + 1)]);
    } else if (Array.isArray(m) && m.length === 2 && m.every((t) => typeof t === "string")) {
      merges.push(m as [string, string]);
    } else return undefined;
  }
  return { vocab, merges, splits, nfc, ignoreMerges: model.ignore_merges === true };
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
  const runnable = { ...json, pre_tokenizer: asTokenizersJsReads(json.pre_tokenizer) };
  try {
    full = new HfTokenizer(runnable, {});
    plain = new HfTokenizer({ ...runnable, added_tokens: added.filter((t) => !t.special) }, {});
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
  const utf8 = new TextDecoder();
  const surface = (token: string): string => {
    if (!byteLevel) return token.replaceAll("\u2581", " ");
    const bytes = Uint8Array.from(token, (c) => CHAR_BYTES.get(c) ?? 0x3f);
    return utf8.decode(bytes);
  };
  const joins = /[\p{L}\p{N}] /u;
  const splitsAtSpaces = ![...vocab.keys()].some((t) => joins.test(surface(t)));

  const { truncation: _t, padding: _p, version: _v, ...definition } = json;
  const hash = createHash("sha256").update(canonical({ kind: "tokenizer.json", ...definition })).digest(
    "hex",
  );
  const spec = byteLevelBpeSpec(json, runnable.pre_tokenizer);
  const raw = (spec && byteLevelBpeEncoder(spec)) ??
    ((text: string): number[] => plain.encode(text, { add_special_tokens: false }).ids);
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
    token: (id: number): string => {
      const token = Number.isInteger(id) && id >= 0 ? full.id_to_token(id) : undefined;
      if (token === undefined) throw new RangeError(`id ${id} names no token of the ${vocabSize}`);
      return token;
    },
  };
}

/** GPT-2's pre-tokenizer regex (also the second step of several of llama.cpp's lists). */
const GPT2_SPLIT = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
/** Llama 3's, with its case-insensitive group spelled out as llama.cpp does (portable to every engine). */
const LLAMA3_SPLIT =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+" +
  "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** Qwen2's: Llama 3's with single digits. */
const QWEN2_SPLIT = LLAMA3_SPLIT.replace("\\p{N}{1,3}", "\\p{N}");

/** A llama.cpp pre-tokenizer: regexes each splitting the pieces of the one before, and its vocabulary flags. */
interface PreTokenizer {
  /** Patterns applied in turn; a piece is cut into the matches and the text between them. */
  readonly splits: readonly string[];
  /** A word that is itself a token is not merged from its characters (llama.cpp's `ignore_merges`). */
  readonly ignoreMerges?: boolean;
  /** Whether a BOS starts every sequence when the file does not say (`tokenizer.ggml.add_bos_token`). */
  readonly addBos?: boolean;
}

const GPT2_PRE: PreTokenizer = { splits: [GPT2_SPLIT] };
const LLAMA3_PRE: PreTokenizer = { splits: [LLAMA3_SPLIT], ignoreMerges: true, addBos: true };
const STARCODER_PRE: PreTokenizer = { splits: ["\\p{N}", GPT2_SPLIT] };

/**
 * The byte-level BPE pre-tokenizers of GGUF's `tokenizer.ggml.pre` names, as llama.cpp's
 * `llama-vocab.cpp` defines them (names it maps to the same regexes and flags share an entry).
 * "default" is what llama.cpp uses for a file without a name.
 */
const PRE_TOKENIZERS: Record<string, PreTokenizer> = {
  default: {
    splits: ["[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_SPLIT, "\\p{N}+", "[0-9][0-9][0-9]"],
  },
  "gpt-2": GPT2_PRE,
  mpt: GPT2_PRE,
  "llama-bpe": LLAMA3_PRE,
  llama3: LLAMA3_PRE,
  "llama-v3": LLAMA3_PRE,
  qwen2: { splits: [QWEN2_SPLIT] },
  smollm: STARCODER_PRE,
  starcoder: STARCODER_PRE,
  refact: STARCODER_PRE,
  falcon: { splits: ["[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2_SPLIT, "[0-9][0-9][0-9]"] },
  "deepseek-llm": {
    // The letter class is DeepSeek's list of cased letters, escaped: written out, some of its range
    // ends (U+1F7D, U+1FD3, U+1FDB, U+212A...) are characters that Unicode normalization replaces.
    splits: [
      "[\\r\\n]",
      "\\s?[" +
      "A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293\u0295-\u02AF" +
      "\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C\u038E-\u03A1" +
      "\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5\u13A0-\u13F5\u13F8-\u13FD" +
      "\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77\u1D79-\u1D9A\u1E00-\u1F15\u1F18-\u1F1D" +
      "\u1F20-\u1F45\u1F48-\u1F4D\u1F50-\u1F57\u1F59\u1F5B\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4" +
      "\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC\u1FD0-\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC" +
      "\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107\u210A-\u2113\u2115\u2119-\u211D\u2124\u2126" +
      "\u2128\u212A-\u212D\u212F-\u2134\u2139\u213C-\u213F\u2145-\u2149\u214E\u2183\u2184" +
      "\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE\u2CF2\u2CF3\uA640-\uA66D\uA680-\uA69B\uA722-\uA76F" +
      "\uA771-\uA787\uA78B-\uA78E\uAB70-\uABBF\uFB00-\uFB06\uFB13-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A" +
      "\u{10400}-\u{1044F}\u{104B0}-\u{104D3}\u{104D8}-\u{104FB}\u{10C80}-\u{10CB2}\u{10CC0}-\u{10CF2}" +
      "\u{118A0}-\u{118DF}\u{1E900}-\u{1E943}" +
      "]+",
      "\\s?[!-/:-~\uFF01-\uFF0F\uFF1A-\uFF5E\u2018-\u201F\u3000-\u3002]+",
      "\\s+$",
      "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+",
      "\\p{N}+",
    ],
  },
  "deepseek-coder": {
    splits: [
      "[\\r\\n]",
      "\\s?\\p{L}+",
      "\\s?\\p{P}+",
      "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+",
      "\\p{N}",
    ],
  },
};

/**
 * A `tokenizer.json` vocabulary: each token's first id. Without a prototype, so that tokens such as
 * "valueOf" or "__proto__" are plain keys.
 */
function tokenIds(tokens: readonly string[]): Record<string, number> {
  const vocab: Record<string, number> = Object.create(null);
  tokens.forEach((t, id) => vocab[t] ??= id);
  return vocab;
}

/** A byte-level BPE vocabulary as GGUF stores it (`tokenizer.ggml.model` = "gpt2"). */
export interface ByteLevelBpeModel {
  /** Tokens by id, in byte-level characters ("Ġ" for a space); added tokens as their text. */
  readonly tokens: readonly string[];
  /** Merge rules in priority order, each "left right". */
  readonly merges: readonly string[];
  /** {@linkcode PieceType} of each token; control tokens become special added tokens, user-defined ones plain added tokens. */
  readonly types?: readonly number[];
  /** Beginning-of-sequence id. */
  readonly bosId?: number;
  /** End-of-sequence id. */
  readonly eosId?: number;
  /** Whether a BOS starts every sequence (`tokenizer.ggml.add_bos_token`; default: the pre-tokenizer's, else false). */
  readonly addBos?: boolean;
  /** Whether an EOS ends every sequence (`tokenizer.ggml.add_eos_token`, default false). */
  readonly addEos?: boolean;
  /** Pre-tokenizer name, `tokenizer.ggml.pre` (default "default", as llama.cpp reads a file without one). */
  readonly pre?: string;
}

/**
 * The `tokenizer.json` definition of a byte-level BPE vocabulary with merges, tokenizing as
 * llama.cpp does: its pre-tokenizer regexes as a sequence of isolating splits, then the byte-level
 * mapping and the merges by rank.
 *
 * @throws {DataError} for a pre-tokenizer name llama.cpp's list has but this one does not.
 */
export function byteLevelBpeJson(model: ByteLevelBpeModel): Json {
  const name = model.pre ?? "default";
  if (!Object.hasOwn(PRE_TOKENIZERS, name)) {
    throw new DataError(
      `byte-level BPE pre-tokenizer ${JSON.stringify(name)} is not supported (supported: ${
        Object.keys(PRE_TOKENIZERS).join(", ")
      })`,
    );
  }
  const pre = PRE_TOKENIZERS[name];
  const vocab = tokenIds(model.tokens);
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
  const special = (on: boolean | undefined, id: number | undefined): number | undefined =>
    on && id !== undefined && id >= 0 ? id : undefined;
  const bos = special(model.addBos ?? pre.addBos, model.bosId);
  const eos = special(model.addEos, model.eosId);
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
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        ...pre.splits.map((regex) => ({
          type: "Split",
          pattern: { Regex: regex },
          behavior: "Isolated",
          invert: false,
        })),
        byteLevel(false),
      ],
    },
    post_processor: bos === undefined && eos === undefined ? null : template(model.tokens, bos, eos),
    decoder: byteLevel(true),
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: pre.ignoreMerges === true,
      vocab,
      merges: model.merges.map((m) => {
        const i = m.indexOf(" ", 1);
        return [m.slice(0, i), m.slice(i + 1)];
      }),
    },
  };
}

/** A post-processor putting the tokens `bos` before and `eos` after each sequence (either may be absent). */
function template(tokens: readonly string[], bos: number | undefined, eos: number | undefined): Json {
  const mark = (id: number | undefined, typeId: number): Json[] =>
    id === undefined ? [] : [{ SpecialToken: { id: tokens[id], type_id: typeId } }];
  const specials: Json = {};
  for (const id of [bos, eos]) {
    if (id !== undefined) specials[tokens[id]] = { id: tokens[id], ids: [id], tokens: [tokens[id]] };
  }
  return {
    type: "TemplateProcessing",
    single: [...mark(bos, 0), { Sequence: { id: "A", type_id: 0 } }, ...mark(eos, 0)],
    pair: [
      ...mark(bos, 0),
      { Sequence: { id: "A", type_id: 0 } },
      ...mark(eos, 0),
      ...mark(bos, 1),
      { Sequence: { id: "B", type_id: 1 } },
      ...mark(eos, 1),
    ],
    special_tokens: specials,
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
 * Text on which llama.cpp's byte-level pre-tokenizers split differently from each other: contractions
 * in both cases, runs of 1 to 5 digits, punctuation runs, letters of several scripts, emoji, and
 * runs of spaces, tabs and newlines.
 */
const PRE_TOKENIZER_PROBE = [
  "Hello world! It's, I'M, we'll, they'd, you're, I've, 'S 'T 'Re.",
  "1 12 123 1234 12345 3.14159 $1,000,000 +-*/=<>^~|` @#%&_ (a) [b] {c} ... !!! ???",
  "naïve café Größe ØÆÅ Ελληνικά русский 中文字符 日本語の文 한국어 मनुष्य 🦙🚀 ✓",
  "  two spaces\tand\ttabs\n\nnew lines \n \r\n  trailing   \n\n\n   end ",
  "snake_case camelCase ALLCAPS x2 2x a1b2c3 --flag=value /path/to.file 'quoted' \"double\"",
];

/**
 * The GGUF form of a byte-level BPE `tokenizer.json` (`tokenizer.ggml.model` "gpt2"), as
 * llama.cpp's converter writes it: tokens by id (added tokens as their text, ids without a token
 * as unused `[PAD{id}]`), token types (added special tokens control, others user-defined), merges
 * as "left right", the BOS its post-processor puts first and its end-of-sequence token, and the name
 * of llama.cpp's pre-tokenizer that splits as it does. Where the converter recognises a
 * pre-tokenizer by the ids of a test text, this takes the first of llama.cpp's (the default one
 * last) that cuts {@linkcode PRE_TOKENIZER_PROBE} into the same pieces and takes whole-word tokens
 * alike (`ignore_merges`). Undefined for a definition that is not byte-level BPE.
 *
 * @throws {DataError} when no pre-tokenizer of llama.cpp's splits as the definition does.
 */
export function byteLevelBpeModel(json: unknown): ByteLevelBpeModel | undefined {
  if (!isObject(json) || !isObject(json.model)) return undefined;
  const model = json.model;
  const byteLevel = [...objects(json.pre_tokenizer)].some((o) => o.type === "ByteLevel");
  if (model.type !== "BPE" || !isObject(model.vocab) || !Array.isArray(model.merges) || !byteLevel) {
    return undefined;
  }
  // One name per pre-tokenizer (the first of the aliases that share an entry), llama.cpp's fallback last.
  const names = Object.keys(PRE_TOKENIZERS).filter((name, i, all) =>
    name !== "default" && all.findIndex((other) => PRE_TOKENIZERS[other] === PRE_TOKENIZERS[name]) === i
  );
  const probe = PRE_TOKENIZER_PROBE.join("\n");
  const splits = splitRegexes(asTokenizersJsReads(json.pre_tokenizer));
  const pieces = splits && JSON.stringify(preTokenize(probe, splits));
  const pre = [...names, "default"].find((name) => {
    const candidate = PRE_TOKENIZERS[name];
    return (candidate.ignoreMerges === true) === (model.ignore_merges === true) &&
      JSON.stringify(preTokenize(probe, candidate.splits.map((r) => jsRegex(r)!))) === pieces;
  });
  if (!pre) {
    throw new DataError(
      `tokenizer.json: its pre-tokenizer splits text as none of llama.cpp's (${
        names.join(", ")
      }, default) does`,
    );
  }
  const reference = jsonTokenizer(json);
  const tokens: string[] = [];
  const types: number[] = [];
  for (const [token, id] of Object.entries(model.vocab)) {
    [tokens[id as number], types[id as number]] = [token, PieceType.normal];
  }
  for (const t of Array.isArray(json.added_tokens) ? json.added_tokens as AddedToken[] : []) {
    [tokens[t.id], types[t.id]] = [t.content, t.special ? PieceType.control : PieceType.userDefined];
  }
  for (let id = 0; id < tokens.length; id++) {
    if (tokens[id] === undefined) [tokens[id], types[id]] = [`[PAD${id}]`, PieceType.unused];
  }
  return {
    tokens,
    merges: model.merges.map((m) => Array.isArray(m) ? m.join(" ") : String(m)),
    types,
    bosId: reference.bosToken,
    eosId: reference.eosToken,
    addBos: reference.bosToken !== undefined,
    pre,
  };
}

/**
 * The Llama-2-style `tokenizer.json` of a SentencePiece BPE vocabulary: the pieces as vocabulary,
 * merges ordered by the merged piece's score (transformers' `SentencePieceExtractor`), byte
 * fallback, and normalizers for the dummy prefix and, unlike transformers' converter, SentencePiece's
 * removal of extra spaces.
 */
export function sentencePieceToJson(model: SentencePieceModel): Json {
  const vocab = tokenIds(model.pieces);
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
    post_processor: bos === undefined ? null : template(model.pieces, model.bosId, undefined),
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
