/**
 * Variants of stories260K's SentencePiece model (tok512) that exercise each flag the encoder
 * follows, written as `.model` files by this project's writer for `tokenizer_fixtures.py` to
 * check against Google's `sentencepiece`; the tests build the same variants in memory.
 *
 *   deno run -A scripts/sentencepiece_variants.ts OUT_DIR
 *
 * @module
 */
import {
  encodeSentencePieceModel,
  parseSentencePieceModel,
  PieceType,
  type SentencePieceModel,
} from "@inheritune/data";

/** The model the variants start from. */
export const TOK512 = new URL("../models/stories260K/tokenizer.model", import.meta.url);

/** Each variant's name and how it differs from tok512 ("rewritten": not at all, only re-encoded). */
export const VARIANTS: Record<string, (m: SentencePieceModel) => SentencePieceModel> = {
  rewritten: (m) => m,
  keep_spaces: (m) => ({ ...m, removeExtraWhitespaces: false }),
  no_prefix: (m) => ({ ...m, addDummyPrefix: false }),
  no_byte_fallback: (m) => ({
    ...m,
    byteFallback: false,
    types: m.types.map((t) => (t === PieceType.byte ? PieceType.unused : t)),
  }),
};

if (import.meta.main) {
  const [out] = Deno.args;
  if (!out) throw new Error("usage: deno run -A scripts/sentencepiece_variants.ts OUT_DIR");
  const tok512 = parseSentencePieceModel(await Deno.readFile(TOK512));
  for (const [name, make] of Object.entries(VARIANTS)) {
    await Deno.writeFile(`${out}/${name}.model`, encodeSentencePieceModel(make(tok512)));
  }
}
