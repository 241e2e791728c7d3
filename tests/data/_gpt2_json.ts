/**
 * GPT-2's vocabulary and merges in GGUF's byte-level form, derived from gpt-tokenizer's r50k_base
 * ranks at test time (as transformers' tiktoken converter does: every split of a token into two
 * tokens is a merge, ranked by the merged token), so no 2 MB tokenizer.json is committed.
 */
import ranks from "gpt-tokenizer/bpeRanks/r50k_base";
import { GPT2_EOT, PieceType } from "@inheritune/data";

/** Tokens by id in byte-level characters, merges "left right" in rank order, types (EOT control). */
export function gpt2Vocabulary(): { tokens: string[]; merges: string[]; types: number[] } {
  const printable = (b: number): boolean => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
  const chars: string[] = [];
  let shifted = 0;
  for (let b = 0; b < 256; b++) chars[b] = String.fromCodePoint(printable(b) ? b : 256 + shifted++);
  const encoder = new TextEncoder();
  const tokens = (ranks as (string | number[])[]).map((v) =>
    Array.from(typeof v === "string" ? encoder.encode(v) : v, (b) => chars[b]).join("")
  );
  const ids = new Map(tokens.map((t, i) => [t, i]));
  const merges: { pair: string; rank: number; l: number; r: number }[] = [];
  tokens.forEach((token, rank) => {
    const cps = [...token];
    for (let i = 1; i < cps.length; i++) {
      const l = ids.get(cps.slice(0, i).join(""));
      const r = ids.get(cps.slice(i).join(""));
      if (l !== undefined && r !== undefined) merges.push({ pair: `${tokens[l]} ${tokens[r]}`, rank, l, r });
    }
  });
  merges.sort((a, b) => a.rank - b.rank || a.l - b.l || a.r - b.r);
  tokens[GPT2_EOT] = "<|endoftext|>";
  const types = tokens.map((_, i) => (i === GPT2_EOT ? PieceType.control : PieceType.normal));
  return { tokens, merges: merges.map((m) => m.pair), types };
}
