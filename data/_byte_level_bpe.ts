/**
 * A fast byte-level BPE encoder: regex splits isolating their matches, each piece's UTF-8 bytes
 * as byte-level symbols, then the adjacent pair of lowest merge rank merged, leftmost first, until
 * none is left (the Rust `tokenizers` library's and llama.cpp's order). Each distinct word is
 * merged once and cached, and merges are looked up by the ids of their two halves, so it runs
 * several times faster than Tokenizers.js on the same definition (`tokenizer_json.ts` decides which
 * definitions it runs; the tests compare both with the references on real files).
 *
 * @module
 */
import { BYTE_CHARS } from "./_byte_level.ts";

/** A byte-level BPE vocabulary and its pre-tokenization. */
export interface ByteLevelBpeSpec {
  /** Ids by token, in byte-level characters. */
  readonly vocab: ReadonlyMap<string, number>;
  /** Merges in rank order, as the two tokens they join. */
  readonly merges: readonly (readonly [string, string])[];
  /** Regexes (flags "gu") applied in turn, each cutting every piece into its matches and the text between. */
  readonly splits: readonly RegExp[];
  /** Whether text is put in Unicode normal form C first. */
  readonly nfc: boolean;
  /** Whether a word that is itself a token is taken whole (`ignore_merges`). */
  readonly ignoreMerges: boolean;
}

/** A bounded cache of encoded words; cleared when full. */
const WORD_CACHE = 1 << 16;

/** `pieces` cut by `regex` into its matches and the text between them, empty pieces dropped. */
function isolate(pieces: string[], regex: RegExp): string[] {
  const out: string[] = [];
  for (const piece of pieces) {
    let at = 0;
    for (const m of piece.matchAll(regex)) {
      if (m.index > at) out.push(piece.slice(at, m.index));
      if (m[0].length > 0) out.push(m[0]);
      at = m.index + m[0].length;
    }
    if (at < piece.length) out.push(piece.slice(at));
  }
  return out;
}

/** The pieces of `text` after each regex of `splits` in turn has cut them into its matches and the text between. */
export function preTokenize(text: string, splits: readonly RegExp[]): string[] {
  let pieces = [text];
  for (const regex of splits) pieces = isolate(pieces, regex);
  return pieces;
}

/**
 * The encoder of `spec`, or undefined when it cannot run it as the reference does: a merge whose
 * halves or result are not tokens.
 */
export function byteLevelBpeEncoder(spec: ByteLevelBpeSpec): ((text: string) => number[]) | undefined {
  const { vocab, splits, nfc, ignoreMerges } = spec;
  // A byte without a token is dropped before merging, as the Rust library does (SmolLM2 has no
  // token for some control characters).
  const byteIds = BYTE_CHARS.map((c) => vocab.get(c) ?? -1);
  // Merge of (left, right), keyed left * span + right: its rank and the merged id.
  let span = 0;
  for (const id of vocab.values()) span = Math.max(span, id + 1);
  const ranks = new Map<number, number>();
  const merged = new Map<number, number>();
  for (let rank = 0; rank < spec.merges.length; rank++) {
    const [left, right] = spec.merges[rank];
    const [l, r, lr] = [vocab.get(left), vocab.get(right), vocab.get(left + right)];
    if (l === undefined || r === undefined || lr === undefined) return undefined;
    const key = l * span + r;
    if (!ranks.has(key)) {
      ranks.set(key, rank);
      merged.set(key, lr);
    }
  }
  const utf8 = new TextEncoder();
  const cache = new Map<string, number[]>();

  function bpe(word: string): number[] {
    const bytes = utf8.encode(word);
    if (ignoreMerges) {
      let chars = "";
      for (const b of bytes) chars += BYTE_CHARS[b];
      const whole = vocab.get(chars);
      if (whole !== undefined) return [whole];
    }
    const ids: number[] = [];
    for (const b of bytes) if (byteIds[b] >= 0) ids.push(byteIds[b]);
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < ids.length; i++) {
        const rank = ranks.get(ids[i] * span + ids[i + 1]);
        if (rank !== undefined && rank < bestRank) [best, bestRank] = [i, rank];
      }
      if (best < 0) return ids;
      ids.splice(best, 2, merged.get(ids[best] * span + ids[best + 1])!);
    }
  }

  return (text: string): number[] => {
    const out: number[] = [];
    for (const word of preTokenize(nfc ? text.normalize("NFC") : text, splits)) {
      let ids = cache.get(word);
      if (!ids) {
        ids = bpe(word);
        if (cache.size >= WORD_CACHE) cache.clear();
        cache.set(word, ids);
      }
      for (const id of ids) out.push(id);
    }
    return out;
  };
}
