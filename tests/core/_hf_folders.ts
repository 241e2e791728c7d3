/**
 * Model folders written by `saveModel` with each kind of tokenizer a folder can carry: stories260K's
 * SentencePiece vocabulary (from its GGUF), SmolLM2's byte-level BPE `tokenizer.json` (a Hugging
 * Face file without `tokenizer_config.json`), and GPT-2's vocabulary in GGUF's byte-level form.
 * `scripts/hf_tokenizer_fixtures.py` runs this file (`deno run -A tests/core/_hf_folders.ts DIR`)
 * and records the ids `transformers` gives with each folder; `hf_tokenizer_test.ts` writes them
 * again and compares.
 */
import { join } from "node:path";
import { builtinByteLevelModel, byteLevelBpeJson } from "@inheritune/data";
import { type Checkpoint, loadModel, saveModel } from "@inheritune/core";
import { gunzip } from "../_util.ts";
import { FIXTURES } from "./_fixtures.ts";

const STORIES = new URL("../../models/stories260K/model.gguf", import.meta.url).pathname;

/** The folders' names, in the order they are written. */
export const HF_FOLDERS = ["stories260K", "smollm2", "gpt2_gguf"] as const;

/** Writes each folder of {@linkcode HF_FOLDERS} under `dir`. */
export async function writeHfFolders(dir: string): Promise<void> {
  const small = await loadModel(FIXTURES + "llama_c64");
  const json = (definition: unknown): Map<string, Uint8Array> =>
    new Map([["tokenizer.json", new TextEncoder().encode(JSON.stringify(definition))]]);
  const gpt2 = (await builtinByteLevelModel("gpt2"))!;
  const checkpoints: Record<(typeof HF_FOLDERS)[number], Checkpoint> = {
    stories260K: await loadModel(STORIES),
    smollm2: {
      ...small,
      tokenizerFiles: new Map([[
        "tokenizer.json",
        await gunzip(new URL("tokenizers/smollm2/tokenizer.json.gz", `file://${FIXTURES}`)),
      ]]),
    },
    gpt2_gguf: { ...small, tokenizerFiles: json(byteLevelBpeJson({ ...gpt2, bosId: undefined })) },
  };
  for (const name of HF_FOLDERS) await saveModel(join(dir, name), checkpoints[name]);
}

if (import.meta.main) await writeHfFolders(Deno.args[0]);
