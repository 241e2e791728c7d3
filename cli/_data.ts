/**
 * How the commands open token data for a model: the data's tokens must be the model's. A prepared
 * folder's `meta.json` names its tokenizer, which must be the model's own (same definition hash);
 * bare llm.c shards carry no `meta.json`, so their tokens are taken as the model's, checked
 * against its vocabulary.
 *
 * @module
 */
import {
  checkTokenizerMatch,
  type Dataset,
  loadTokenizer,
  maxToken,
  openDataset,
  type Tokenizer,
} from "@inheritune/data";

/**
 * Opens `path` for a model with vocabulary `vocabSize` and, when known, tokenizer `tokenizer`.
 *
 * @throws {DataError} when `meta.json` names another tokenizer, or a token is not below the
 * model's vocabulary.
 */
export async function openModelData(
  path: string,
  model: { vocabSize: number; tokenizer?: Tokenizer },
): Promise<Dataset> {
  // The tokenizer is checked first: "another tokenizer" says more than "a token out of range".
  const dataset = await openDataset(path);
  try {
    if (dataset.meta && model.tokenizer) checkTokenizerMatch(dataset.meta, model.tokenizer, path);
  } catch (e) {
    dataset.close();
    throw e;
  }
  dataset.close();
  return await openDataset(path, { vocabSize: model.vocabSize });
}

/** The tokenizer the data was prepared with: `meta.json`'s, or undefined for bare shards. */
export async function dataTokenizer(dataset: Dataset): Promise<Tokenizer | undefined> {
  return dataset.meta ? await loadTokenizer(dataset.path) : undefined;
}

/**
 * The vocabulary of bare shards, which carry no `meta.json`: bytes (256) or GPT-2's (50257) when
 * every token fits, else the largest token + 1; with the tokenizer that implies.
 */
export function bareVocabulary(dataset: Dataset): { vocabSize: number; tokenizer?: string } {
  const max = Math.max(...dataset.splits.map((s) => maxToken(dataset.split(s))));
  if (max < 256) return { vocabSize: 256, tokenizer: "bytes" };
  if (max < 50257) return { vocabSize: 50257, tokenizer: "gpt2" };
  return { vocabSize: max + 1 };
}
