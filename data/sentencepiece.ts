/**
 * SentencePiece BPE tokenizers (Llama 1/2, llama2.c's tok512, GGUF `tokenizer.ggml.model` =
 * "llama"): the vocabulary as plain arrays ({@linkcode SentencePieceModel}), read from and written
 * to a `.model` protobuf, and an encoder that gives the ids of Google's `sentencepiece` library.
 *
 * Encoding follows `sentencepiece`'s normalizer and `bpe_model.cc`: spaces become "▁", a "▁" is
 * prepended (add_dummy_prefix), runs of spaces collapse and leading/trailing spaces go
 * (remove_extra_whitespaces); then, from single characters, the adjacent pair whose concatenation
 * is the highest-scoring piece is merged, leftmost first on ties, until none is; unused pieces are
 * split back into what they were merged from; a symbol with no piece becomes its UTF-8 bytes'
 * `<0xXX>` pieces (byte_fallback) or the unknown id. Only the identity normalization rule is
 * supported (no precompiled character map), as Llama's and tok512's models use.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { DataError } from "./errors.ts";
import { int32, MessageWriter, type ProtoField, readMessage } from "./_protobuf.ts";
import type { EncodeOptions, Tokenizer } from "./tokenizer_types.ts";
import { letterOrDigitBefore } from "./_words.ts";

/** SentencePiece's piece types, as in `sentencepiece_model.proto` and GGUF's `tokenizer.ggml.token_type`. */
export const PieceType = {
  normal: 1,
  unknown: 2,
  control: 3,
  userDefined: 4,
  unused: 5,
  byte: 6,
} as const;

/** A SentencePiece vocabulary and the normalizer flags that decide its ids. */
export interface SentencePieceModel {
  /** Piece strings by id ("▁" for a space, `<0x0A>` for a byte). */
  readonly pieces: readonly string[];
  /** Score of each piece; BPE merges the highest-scoring piece first. */
  readonly scores: readonly number[];
  /** Type of each piece, a {@linkcode PieceType} value. */
  readonly types: readonly number[];
  /** Beginning-of-sentence id, -1 for none. */
  readonly bosId: number;
  /** End-of-sentence id, -1 for none. */
  readonly eosId: number;
  /** Unknown-piece id. */
  readonly unkId: number;
  /** Padding id, -1 for none. */
  readonly padId: number;
  /** Prepend "▁" to a text (SentencePiece default true). */
  readonly addDummyPrefix: boolean;
  /** Drop leading and trailing spaces and collapse runs of spaces (SentencePiece default true). */
  readonly removeExtraWhitespaces: boolean;
  /** Write spaces as "▁" (SentencePiece default true). */
  readonly escapeWhitespaces: boolean;
  /** Encode characters without a piece as their UTF-8 bytes' `<0xXX>` pieces. */
  readonly byteFallback: boolean;
  /** Text an unknown id decodes to (default " ⁇ "). */
  readonly unkSurface?: string;
  /** `trainer_spec.model_type`: 1 unigram, 2 BPE, 3 word, 4 char (default 2; only BPE encodes here). */
  readonly modelType?: number;
  /** `normalizer_spec.precompiled_charsmap`; only an empty one (identity normalization) is supported. */
  readonly precompiledCharsmap?: Uint8Array;
}

const DEFAULT_UNK_SURFACE = " \u2047 ";
const SPACE_SYMBOL = "\u2581";
const MODEL_TYPES = ["", "unigram", "bpe", "word", "char"];

function fieldsOf(bytes: Uint8Array, what: string): ProtoField[] {
  try {
    return readMessage(bytes);
  } catch (e) {
    throw new DataError(`not a SentencePiece model: ${what}: ${(e as Error).message}`);
  }
}

/**
 * Reads a SentencePiece `.model` file (a `ModelProto` protobuf).
 *
 * @throws {DataError} when the bytes are not a well-formed model with at least one piece.
 */
export function parseSentencePieceModel(bytes: Uint8Array): SentencePieceModel {
  // ignoreBOM: a piece may be U+FEFF itself (Llama 2 has one), which a decoder would drop.
  const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const text = (v: ProtoField["value"], what: string): string => {
    if (!(v instanceof Uint8Array)) throw new DataError(`not a SentencePiece model: ${what} is not a string`);
    try {
      return utf8.decode(v);
    } catch {
      throw new DataError(`not a SentencePiece model: ${what} is not UTF-8`);
    }
  };
  const num = (v: ProtoField["value"], what: string): number => {
    if (typeof v !== "bigint") throw new DataError(`not a SentencePiece model: ${what} is not a varint`);
    return int32(v);
  };
  const pieces: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  const trainer = {
    modelType: 1,
    byteFallback: false,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    unkSurface: "",
  };
  trainer.unkSurface = DEFAULT_UNK_SURFACE;
  const normalizer = {
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
    charsmap: new Uint8Array(0),
  };
  for (const f of fieldsOf(bytes, "the model")) {
    if (f.field === 1 && f.value instanceof Uint8Array) {
      let piece: string | undefined;
      let score = 0;
      let type: number = PieceType.normal;
      for (const p of fieldsOf(f.value, `piece ${pieces.length}`)) {
        if (p.field === 1) piece = text(p.value, `piece ${pieces.length}`);
        else if (p.field === 2 && p.value instanceof Uint8Array && p.wire === 5) {
          score = new DataView(p.value.buffer, p.value.byteOffset, 4).getFloat32(0, true);
        } else if (p.field === 3) type = num(p.value, `type of piece ${pieces.length}`);
      }
      if (piece === undefined) {
        throw new DataError(`not a SentencePiece model: piece ${pieces.length} has no text`);
      }
      pieces.push(piece);
      scores.push(score);
      types.push(type);
    } else if (f.field === 2 && f.value instanceof Uint8Array) {
      for (const t of fieldsOf(f.value, "trainer_spec")) {
        if (t.field === 3) trainer.modelType = num(t.value, "model_type");
        else if (t.field === 35) trainer.byteFallback = num(t.value, "byte_fallback") !== 0;
        else if (t.field === 40) trainer.unkId = num(t.value, "unk_id");
        else if (t.field === 41) trainer.bosId = num(t.value, "bos_id");
        else if (t.field === 42) trainer.eosId = num(t.value, "eos_id");
        else if (t.field === 43) trainer.padId = num(t.value, "pad_id");
        else if (t.field === 44) trainer.unkSurface = text(t.value, "unk_surface");
      }
    } else if (f.field === 3 && f.value instanceof Uint8Array) {
      for (const n of fieldsOf(f.value, "normalizer_spec")) {
        if (n.field === 2 && n.value instanceof Uint8Array) normalizer.charsmap = n.value.slice();
        else if (n.field === 3) normalizer.addDummyPrefix = num(n.value, "add_dummy_prefix") !== 0;
        else if (n.field === 4) {
          normalizer.removeExtraWhitespaces = num(n.value, "remove_extra_whitespaces") !== 0;
        } else if (n.field === 5) normalizer.escapeWhitespaces = num(n.value, "escape_whitespaces") !== 0;
      }
    }
  }
  if (pieces.length === 0) throw new DataError("not a SentencePiece model: no pieces");
  return {
    pieces,
    scores,
    types,
    bosId: trainer.bosId,
    eosId: trainer.eosId,
    unkId: trainer.unkId,
    padId: trainer.padId,
    addDummyPrefix: normalizer.addDummyPrefix,
    removeExtraWhitespaces: normalizer.removeExtraWhitespaces,
    escapeWhitespaces: normalizer.escapeWhitespaces,
    byteFallback: trainer.byteFallback,
    unkSurface: trainer.unkSurface,
    modelType: trainer.modelType,
    precompiledCharsmap: normalizer.charsmap,
  };
}

/**
 * Writes `model` as a SentencePiece `.model` protobuf that Google's `sentencepiece` loads and
 * encodes with exactly as this module does: the pieces, and the trainer and normalizer fields that
 * decide ids (model type, byte fallback, special ids, normalizer flags; rule "identity").
 */
export function encodeSentencePieceModel(model: SentencePieceModel): Uint8Array {
  checkArrays(model);
  const out = new MessageWriter();
  for (let i = 0; i < model.pieces.length; i++) {
    const piece = new MessageWriter().bytes(1, model.pieces[i]).float(2, model.scores[i]);
    if (model.types[i] !== PieceType.normal) piece.varint(3, model.types[i]);
    out.bytes(1, piece.finish());
  }
  const trainer = new MessageWriter()
    .varint(3, model.modelType ?? 2)
    .varint(4, model.pieces.length)
    .varint(35, model.byteFallback)
    .varint(40, model.unkId)
    .varint(41, model.bosId)
    .varint(42, model.eosId)
    .varint(43, model.padId)
    .bytes(44, model.unkSurface ?? DEFAULT_UNK_SURFACE);
  out.bytes(2, trainer.finish());
  const charsmap = model.precompiledCharsmap ?? new Uint8Array(0);
  const normalizer = new MessageWriter().bytes(1, charsmap.length > 0 ? "custom" : "identity");
  if (charsmap.length > 0) normalizer.bytes(2, charsmap);
  normalizer
    .varint(3, model.addDummyPrefix)
    .varint(4, model.removeExtraWhitespaces)
    .varint(5, model.escapeWhitespaces);
  out.bytes(3, normalizer.finish());
  return out.finish();
}

function checkArrays(model: SentencePieceModel): void {
  const n = model.pieces.length;
  if (model.scores.length !== n || model.types.length !== n) {
    throw new DataError(
      `SentencePiece vocabulary: ${n} pieces but ${model.scores.length} scores and ${model.types.length} types`,
    );
  }
}

/**
 * SHA-256 (hex) of what decides a SentencePiece tokenizer's ids: pieces, scores, types, special
 * ids and normalizer flags (not the unknown piece's surface, which GGUF does not carry). Equal for
 * the same vocabulary read from a `.model`, a GGUF file or a prepared folder's copy.
 */
export function sentencePieceHash(model: SentencePieceModel): string {
  const canonical = {
    kind: "sentencepiece",
    modelType: model.modelType ?? 2,
    pieces: model.pieces,
    scores: model.scores.map((s) => Math.fround(s)),
    types: model.types,
    bosId: model.bosId,
    eosId: model.eosId,
    unkId: model.unkId,
    padId: model.padId,
    addDummyPrefix: model.addDummyPrefix,
    removeExtraWhitespaces: model.removeExtraWhitespaces,
    escapeWhitespaces: model.escapeWhitespaces,
    byteFallback: model.byteFallback,
  };
  return createHash("sha256").update(JSON.stringify(canonical)).digest("hex");
}

/** A bounded cache of encoded words; cleared when full. */
const WORD_CACHE = 1 << 16;

/** Binary max-heap of candidate merges: highest score first, then leftmost. */
class Agenda {
  readonly #score: number[] = [];
  readonly #left: number[] = [];
  readonly #right: number[] = [];
  readonly #size: number[] = [];
  #n = 0;

  get length(): number {
    return this.#n;
  }

  #before(a: number, b: number): boolean {
    return this.#score[a] > this.#score[b] ||
      (this.#score[a] === this.#score[b] && this.#left[a] < this.#left[b]);
  }

  #swap(a: number, b: number): void {
    for (const arr of [this.#score, this.#left, this.#right, this.#size]) [arr[a], arr[b]] = [arr[b], arr[a]];
  }

  push(score: number, left: number, right: number, size: number): void {
    let i = this.#n++;
    this.#score[i] = score;
    this.#left[i] = left;
    this.#right[i] = right;
    this.#size[i] = size;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(i, parent)) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  /** Removes the top entry and returns [left, right, size]. */
  pop(): [number, number, number] {
    const top: [number, number, number] = [this.#left[0], this.#right[0], this.#size[0]];
    this.#n--;
    if (this.#n > 0) {
      this.#swap(0, this.#n);
      for (let i = 0;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < this.#n && this.#before(l, best)) best = l;
        if (r < this.#n && this.#before(r, best)) best = r;
        if (best === i) break;
        this.#swap(i, best);
        i = best;
      }
    }
    return top;
  }
}

/**
 * A {@linkcode Tokenizer} that encodes and decodes as Google's `sentencepiece` does with `model`.
 * Its `eotToken`, placed before every document by `prepare`, is the BOS id (as llama2.c and
 * Llama's data do); `continuing` text gets no dummy prefix.
 *
 * @throws {DataError} for a model that is not BPE, has a character map, or inconsistent arrays.
 */
export function sentencePieceTokenizer(model: SentencePieceModel): Tokenizer {
  checkArrays(model);
  const modelType = model.modelType ?? 2;
  if (modelType !== 2) {
    throw new DataError(
      `SentencePiece ${MODEL_TYPES[modelType] ?? `type ${modelType}`} models are not supported, only BPE`,
    );
  }
  if ((model.precompiledCharsmap?.length ?? 0) > 0) {
    throw new DataError(
      "SentencePiece models with a precompiled normalization map (e.g. nmt_nfkc) are not supported, only identity",
    );
  }
  const n = model.pieces.length;
  for (const id of [model.bosId, model.eosId, model.unkId, model.padId]) {
    if (id >= n) throw new DataError(`SentencePiece special id ${id} is not below the ${n} pieces`);
  }
  // Pieces BPE may merge into, and the special ones looked up first (sentencepiece's two maps).
  const mergeable = new Map<string, number>();
  const reserved = new Map<string, number>();
  const userDefined: string[] = [];
  const byteIds = new Int32Array(256).fill(-1);
  let unkId = model.unkId;
  for (let id = 0; id < n; id++) {
    const type = model.types[id];
    const piece = model.pieces[id];
    const normal = type === PieceType.normal || type === PieceType.userDefined || type === PieceType.unused;
    const map = normal ? mergeable : reserved;
    if (!map.has(piece)) map.set(piece, id);
    if (type === PieceType.userDefined) userDefined.push(piece);
    if (type === PieceType.unknown) unkId = id;
    const byte = type === PieceType.byte ? /^<0x([0-9A-Fa-f]{2})>$/.exec(piece) : null;
    if (byte) byteIds[parseInt(byte[1], 16)] = id;
  }
  if (model.byteFallback && byteIds.includes(-1)) {
    throw new DataError("SentencePiece model has byte_fallback but not all 256 <0xXX> byte pieces");
  }
  userDefined.sort((a, b) => b.length - a.length);
  const space = model.escapeWhitespaces ? SPACE_SYMBOL : " ";
  const idOf = (piece: string): number => reserved.get(piece) ?? mergeable.get(piece) ?? unkId;
  const isUnused = (id: number): boolean => model.types[id] === PieceType.unused;
  // No piece joins a letter or digit to the space after it, so words can be encoded one by one.
  const wordJoin = new RegExp(`[\\p{L}\\p{N}]${space}`, "u");
  const splitsAtSpaces = ![...mergeable.keys()].some((p) => wordJoin.test(p));
  const hash = sentencePieceHash(model);
  const cache = new Map<string, number[]>();
  const utf8 = new TextEncoder();

  function normalize(text: string, continuing: boolean): string {
    let s = text;
    if (model.removeExtraWhitespaces) {
      if (!continuing) s = s.replace(/^ +/, "");
      s = s.replace(/ {2,}/g, " ");
    }
    if (s === "") return "";
    if (model.escapeWhitespaces) s = s.replaceAll(" ", SPACE_SYMBOL);
    if (model.addDummyPrefix && !continuing) s = space + s;
    if (model.removeExtraWhitespaces) {
      let end = s.length;
      while (end > 0 && s.endsWith(space, end)) end -= space.length;
      s = s.slice(0, end);
    }
    return s;
  }

  /** sentencepiece's BPE on one normalized string, appending ids to `out`. */
  function bpe(text: string, out: number[]): void {
    // Symbols: [start, end) in `text`, UTF-8 size, links, and whether a user-defined piece froze it.
    const start: number[] = [];
    const end: number[] = [];
    const size: number[] = [];
    const frozen: boolean[] = [];
    for (let i = 0; i < text.length;) {
      const user = userDefined.find((u) => text.startsWith(u, i));
      const cp = text.codePointAt(i)!;
      const len = user ? user.length : cp > 0xffff ? 2 : 1;
      start.push(i);
      end.push(i + len);
      size.push(user ? utf8.encode(user).length : cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4);
      frozen.push(user !== undefined);
      i += len;
    }
    const count = start.length;
    const prev = Array.from({ length: count }, (_, i) => i - 1);
    const next = Array.from({ length: count }, (_, i) => (i + 1 < count ? i + 1 : -1));
    const agenda = new Agenda();
    const unmerge = new Map<string, [string, string]>();
    const consider = (left: number, right: number): void => {
      if (left === -1 || right === -1 || frozen[left] || frozen[right]) return;
      const piece = text.slice(start[left], end[right]);
      const id = mergeable.get(piece);
      if (id === undefined) return;
      agenda.push(model.scores[id], left, right, size[left] + size[right]);
      if (isUnused(id)) {
        unmerge.set(piece, [text.slice(start[left], end[left]), text.slice(start[right], end[right])]);
      }
    };
    for (let i = 1; i < count; i++) consider(i - 1, i);
    while (agenda.length > 0) {
      const [left, right, merged] = agenda.pop();
      if (size[left] === 0 || size[right] === 0 || size[left] + size[right] !== merged) continue;
      end[left] = end[right];
      size[left] = merged;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      size[right] = 0;
      consider(prev[left], left);
      consider(left, next[left]);
    }
    const emit = (piece: string): void => {
      const id = idOf(piece);
      const split = isUnused(id) ? unmerge.get(piece) : undefined;
      if (split) {
        emit(split[0]);
        emit(split[1]);
      } else if (id === unkId && model.byteFallback) {
        for (const b of utf8.encode(piece)) out.push(byteIds[b]);
      } else if (id === unkId && out.length > 0 && out[out.length - 1] === unkId) {
        // sentencepiece joins consecutive unknown symbols into one.
      } else {
        out.push(id);
      }
    };
    for (let i = count > 0 ? 0 : -1; i !== -1; i = next[i]) emit(text.slice(start[i], end[i]));
  }

  function encode(text: string, options: EncodeOptions = {}): number[] {
    const normalized = normalize(text, options.continuing === true);
    const out: number[] = [];
    if (!splitsAtSpaces) {
      bpe(normalized, out);
      return out;
    }
    // Words start at a space symbol that follows a letter or digit; each is encoded once and cached.
    let from = 0;
    const word = (to: number): void => {
      if (to <= from) return;
      const w = normalized.slice(from, to);
      let ids = cache.get(w);
      if (!ids) {
        ids = [];
        bpe(w, ids);
        if (cache.size >= WORD_CACHE) cache.clear();
        cache.set(w, ids);
      }
      // Consecutive unknown ids join across words too.
      const skip = !model.byteFallback && ids[0] === unkId && out.at(-1) === unkId ? 1 : 0;
      for (let k = skip; k < ids.length; k++) out.push(ids[k]);
      from = to;
    };
    for (let i = normalized.indexOf(space, 1); i !== -1; i = normalized.indexOf(space, i + 1)) {
      if (letterOrDigitBefore(normalized, i)) word(i);
    }
    word(normalized.length);
    return out;
  }

  function decode(ids: Iterable<number>): string {
    let text = "";
    // sentencepiece drops the dummy-prefix space of the first piece only.
    let first = true;
    const bytes: number[] = [];
    const flush = (): void => {
      if (bytes.length === 0) return;
      text += new TextDecoder().decode(Uint8Array.from(bytes));
      bytes.length = 0;
    };
    for (const id of ids) {
      if (!(id >= 0 && id < n)) throw new RangeError(`id ${id} is not below the ${n} pieces`);
      const type = model.types[id];
      if (type === PieceType.byte) {
        bytes.push(parseInt(model.pieces[id].slice(3, 5), 16));
        first = false;
        continue;
      }
      flush();
      if (type === PieceType.control) continue;
      const atStart = first;
      first = false;
      if (type === PieceType.unknown) {
        text += model.unkSurface ?? DEFAULT_UNK_SURFACE;
        continue;
      }
      let piece = model.pieces[id];
      if (atStart && (model.addDummyPrefix || model.removeExtraWhitespaces) && piece.startsWith(space)) {
        piece = piece.slice(space.length);
      }
      text += model.escapeWhitespaces ? piece.replaceAll(SPACE_SYMBOL, " ") : piece;
    }
    flush();
    return text;
  }

  const eot = model.bosId >= 0 ? model.bosId : undefined;
  return {
    name: "sentencepiece",
    kind: "sentencepiece",
    vocabSize: n,
    eotToken: eot,
    bosToken: model.bosId >= 0 ? model.bosId : undefined,
    eosToken: model.eosId >= 0 ? model.eosId : undefined,
    hash,
    splitsAtSpaces,
    definition: () => ({ file: "tokenizer.model", bytes: encodeSentencePieceModel(model) }),
    encode,
    decode,
    token: (id: number): string => {
      if (!(Number.isInteger(id) && id >= 0 && id < n)) {
        throw new RangeError(`id ${id} is not below the ${n} pieces`);
      }
      return model.pieces[id];
    },
  };
}
