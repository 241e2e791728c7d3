/**
 * Validation text metrics: loss and perplexity as `validationLoss` defines them, plus bits per
 * byte (the summed loss over the UTF-8 bytes the scored tokens cover, over ln 2), which compares
 * models with different tokenizers on the same text, and which ids without a tokenizer lack.
 *
 * @module
 */
import { type LanguageModel, validationLoss } from "@inheritune/core";
import { arraySource, type Tokenizer, type TokenSource } from "@inheritune/data";

/** Result of {@linkcode evaluateText}. */
export interface TextResult {
  /** Mean cross-entropy, nats per token. */
  loss: number;
  /** exp(loss). */
  perplexity: number;
  /** Target tokens scored. */
  tokens: number;
  /** UTF-8 bytes those tokens cover; absent when no tokenizer maps the ids to text. */
  bytes?: number;
  /** Σ loss / (bytes · ln 2); absent with `bytes`. */
  bitsPerByte?: number;
}

/** Most tokens decoded at once when counting bytes. */
const DECODE_PIECE = 1 << 20;

/**
 * UTF-8 bytes covered by tokens `[start, start + count)` of `source`: one per token for the
 * `bytes` tokenizer; otherwise the decoded text's, end-of-text tokens (GPT-2's `<|endoftext|>`, a
 * SentencePiece model's BOS) and other control tokens covering none (they separate documents and
 * stand for no text). A byte-level BPE token may hold part of a character, and SentencePiece drops
 * the dummy-prefix space only at a document's start, so text is decoded a whole document at a
 * time; only a document longer than 2^20 tokens is cut, where a split character or a dropped
 * space may miscount by up to 3 bytes, and so may one cut at the end of the range.
 */
export function coveredBytes(
  source: TokenSource,
  tokenizer: Tokenizer,
  range: { start: number; count: number },
): number {
  if (tokenizer.name === "bytes") return range.count;
  const end = range.start + range.count;
  const encoder = new TextEncoder();
  let bytes = 0;
  let from = range.start;
  const flush = (to: number): void => {
    if (to > from) bytes += encoder.encode(tokenizer.decode(source.read(from, to - from))).length;
  };
  for (let pos = range.start; pos < end;) {
    const chunk = source.read(pos, Math.min(DECODE_PIECE, end - pos));
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] === tokenizer.eotToken) {
        flush(pos + i);
        from = pos + i + 1;
      } else if (pos + i + 1 - from >= DECODE_PIECE) {
        flush(pos + i + 1);
        from = pos + i + 1;
      }
    }
    pos += chunk.length;
  }
  flush(end);
  return bytes;
}

/**
 * Loss, perplexity and bits per byte of `model` on `source` (tokens of `model`'s tokenizer),
 * scoring at most `maxTokens` targets (all complete windows of `model.T` when omitted); without a
 * tokenizer (ids of a model that has none), loss and perplexity only.
 *
 * @throws {RangeError} when `source` holds fewer than T + 1 tokens.
 */
export async function evaluateText(
  model: LanguageModel,
  source: TokenSource,
  options: { tokenizer?: Tokenizer; maxTokens?: number },
): Promise<TextResult> {
  const r = await validationLoss(model, source, { maxTokens: options.maxTokens });
  const result = { loss: r.loss, perplexity: r.perplexity, tokens: r.tokens };
  if (!options.tokenizer) return result;
  // validationLoss's targets are tokens 1 .. r.tokens: window w predicts tokens wT+1 .. wT+T.
  const bytes = coveredBytes(source, options.tokenizer, { start: 1, count: r.tokens });
  return { ...result, bytes, bitsPerByte: r.sum / (bytes * Math.LN2) };
}

/**
 * The text of `source`'s first `maxTokens` tokens (all when omitted) re-encoded with `to`, so that
 * a model reads validation text prepared with another tokenizer. End-of-text tokens of `from`
 * become `to`'s, or are dropped when `to` has none.
 */
export function retokenize(
  source: TokenSource,
  options: { from: Tokenizer; to: Tokenizer; maxTokens?: number },
): TokenSource {
  const { from, to } = options;
  const tokens = source.read(0, Math.min(source.length, options.maxTokens ?? source.length));
  const out: number[] = [];
  let doc = 0;
  const flush = (end: number): void => {
    if (end <= doc) return;
    for (const id of to.encode(from.decode(tokens.subarray(doc, end)))) out.push(id);
  };
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] !== from.eotToken) continue;
    flush(i);
    if (to.eotToken !== undefined) out.push(to.eotToken);
    doc = i + 1;
  }
  flush(tokens.length);
  return arraySource(out);
}
