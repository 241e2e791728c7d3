/**
 * `deno task tokenize --tokenizer SPEC [--text T | --input FILE] [--json]`: the ids and tokens of
 * a text under any tokenizer `prepare` takes, the way to check a tokenizer against another
 * implementation. A thin layer over `loadModelTokenizer` and `Tokenizer.encode`.
 *
 * @module
 */
import { loadModelTokenizer } from "@inheritune/core";
import { DataError, TOKENIZER_SPECS } from "@inheritune/data";
import { type CommandSpec, parseCommand, UsageError } from "./_flags.ts";

/** The command line of `deno task tokenize`. */
export const COMMAND = {
  name: "tokenize",
  summary: "the ids and tokens of a text under a tokenizer, one per line (or one JSON line)",
  usage: "--tokenizer SPEC [--text T | --input FILE] [--json]",
  flags: {
    tokenizer: {
      type: "string",
      arg: "SPEC",
      help: `${TOKENIZER_SPECS}, or a .gguf file`,
      required: true,
    },
    text: { type: "string", arg: "T", help: "the text to tokenize" },
    input: { type: "string", arg: "FILE", help: "a UTF-8 file whose whole text is tokenized" },
    json: {
      type: "boolean",
      help: 'print one line {"tokenizer": {...}, "ids": [...], "tokens": [...]} instead',
    },
  },
  notes: [
    "Each line is an id, a tab and its token as the vocabulary writes it, JSON-quoted (byte-level",
    'vocabularies write a space as "Ġ", SentencePiece ones as "▁"); a last line on stderr counts them.',
    "The text is encoded as prepare encodes a document: no BOS or EOS is added, and special tokens",
    "written in it (<|endoftext|>, <s>) are plain text.",
  ],
  examples: [
    'deno task tokenize --tokenizer gpt2 --text "Hello world"',
    "deno task tokenize --tokenizer models/stories260K/model.gguf --input corpora/tinystories/valid_head.txt --json",
  ],
} as const satisfies CommandSpec;

/** The text `--text` or `--input` gives; exactly one of them. */
async function inputText(text: string | undefined, input: string | undefined): Promise<string> {
  if ((text === undefined) === (input === undefined)) {
    throw new UsageError("give the text with exactly one of --text or --input");
  }
  if (text !== undefined) return text;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(input!);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.IsADirectory) {
      throw new UsageError(`--input ${input}: no such file`);
    }
    throw e;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`--input ${input}: not UTF-8 text`);
  }
}

/** Runs `tokenize` with command-line `args` (without the command name). */
export async function main(args: string[]): Promise<void> {
  const f = parseCommand(COMMAND, args);
  if (!f) return;
  const text = await inputText(f.text, f.input);
  const tokenizer = await loadModelTokenizer(f.tokenizer).catch((e) => {
    throw e instanceof DataError ? new UsageError(`--tokenizer: ${e.message}`) : e;
  });
  const ids = tokenizer.encode(text);
  const tokens = ids.map((id) => tokenizer.token(id));
  if (f.json) {
    const { name, vocabSize, hash, bosToken, eosToken, eotToken } = tokenizer;
    const about = { name, vocabSize, hash, bos: bosToken, eos: eosToken, eot: eotToken };
    console.log(JSON.stringify({ tokenizer: about, ids, tokens }));
    return;
  }
  const lines = new TextEncoder().encode(
    ids.map((id, i) => `${id}\t${JSON.stringify(tokens[i])}\n`).join(""),
  );
  for (let done = 0; done < lines.length;) done += await Deno.stdout.write(lines.subarray(done));
  console.error(
    `${ids.length} tokens from ${new TextEncoder().encode(text).length} bytes (${tokenizer.name}, ` +
      `${tokenizer.vocabSize} ids, hash ${tokenizer.hash.slice(0, 12)})`,
  );
}
