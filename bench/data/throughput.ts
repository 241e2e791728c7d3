/**
 * Data throughput and memory, each next to a baseline measured in the same run:
 *
 *   deno run -A --unstable-ffi bench/data/throughput.ts [--mb 200] [--dir DIR] [--no-baseline]
 *
 * Generates DIR/text_<mb>MB.txt (Brown Corpus documents repeated, separated by <|endoftext|>),
 * then, each in a fresh process so that its peak resident memory (VmHWM) is its own:
 * - prepare throughput in MB/s of text, streaming, with the gpt2 and bytes tokenizers, stories260K's
 *   SentencePiece model (tok512, our encoder) and tok512 as a Llama-2-style tokenizer.json
 *   (Tokenizers.js);
 * - baseline: the whole file read, decoded and encoded in one piece, then written.
 * The whole-file baseline cannot run past ~500 MB (V8's longest string); pass --no-baseline there.
 * Then reader throughput in tokens/s of (B=8, T=1024) batches over the gpt2 train split:
 * - baseline: the whole shard read into memory, windows copied out of it;
 * - BatchSampler over memory-mapped shards and over positioned reads, sequential and shuffled.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import {
  BatchSampler,
  CORPORA,
  DOCUMENT_SEPARATOR,
  HEADER_BYTES,
  jsonTokenizer,
  loadTokenizer,
  openDataset,
  parseSentencePieceModel,
  prepare,
  sentencePieceToJson,
  type Tokenizer,
  writeShard,
} from "@inheritune/data";
import { numberFlag } from "../../cli/_flags.ts";
import { runCommand } from "../../cli/_run.ts";
import { peakMemory } from "../_memory.ts";

const MB = 1e6;
const TOK512 = new URL("../../models/stories260K/tokenizer.model", import.meta.url).pathname;

/** The tokenizer of each streaming prepare mode. */
async function tokenizerOf(mode: string): Promise<string | Tokenizer> {
  if (mode === "prepare-sentencepiece") return TOK512;
  if (mode === "prepare-tokenizer.json") {
    return jsonTokenizer(sentencePieceToJson(parseSentencePieceModel(await Deno.readFile(TOK512))));
  }
  return mode.replace("prepare-", "");
}

async function generate(path: string, bytes: number): Promise<void> {
  try {
    if ((await Deno.stat(path)).size >= bytes) return;
  } catch {
    // not there yet
  }
  const brown = CORPORA.brown;
  const docs: Uint8Array[] = [];
  for (const f of await brown.files()) {
    docs.push(new TextEncoder().encode(brown.toText(await Deno.readTextFile(f.path)) + DOCUMENT_SEPARATOR));
  }
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  for (let n = 0, i = 0; n < bytes; i++) {
    const d = docs[i % docs.length];
    for (let off = 0; off < d.length;) off += await file.write(d.subarray(off));
    n += d.length;
  }
}

/** One measurement in this process; prints a JSON line. */
async function child(mode: string, file: string, out: string): Promise<void> {
  const started = performance.now();
  let tokens = 0;
  if (mode === "whole-gpt2") {
    const gpt2 = await loadTokenizer("gpt2");
    const text = new TextDecoder("utf-8", { fatal: true }).decode(await Deno.readFile(file));
    const docs = text.split(DOCUMENT_SEPARATOR).filter((d) => d.length > 0);
    const ids = docs.flatMap((d) => [gpt2.eotToken!, ...gpt2.encode(d)]);
    await Deno.mkdir(out, { recursive: true });
    await writeShard(join(out, "train_000000.bin"), ids);
    tokens = ids.length;
  } else {
    const meta = await prepare({ inputs: [file], out, tokenizer: await tokenizerOf(mode) });
    tokens = meta.splits.train.tokens + (meta.splits.val?.tokens ?? 0);
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ seconds, tokens, peakMB: peakMemory() / 2 ** 20 }));
}

async function runChild(
  mode: string,
  file: string,
  out: string,
): Promise<{ seconds: number; tokens: number; peakMB: number }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--unstable-ffi",
      new URL(import.meta.url).pathname,
      "--child",
      mode,
      "--file",
      file,
      "--dir",
      out,
    ],
    stderr: "inherit",
  }).output();
  if (r.code !== 0) throw new Error(`${mode} failed`);
  return JSON.parse(new TextDecoder().decode(r.stdout).trim().split("\n").at(-1)!);
}

function readerRate(fn: () => number): { tokensPerSecond: number; seconds: number } {
  const started = performance.now();
  const tokens = fn();
  const seconds = (performance.now() - started) / 1000;
  return { tokensPerSecond: tokens / seconds, seconds };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      mb: { type: "string", default: "200" },
      dir: { type: "string", default: "/tmp/inheritune_data_bench" },
      "no-baseline": { type: "boolean" },
      child: { type: "string" },
      file: { type: "string" },
    },
  });
  if (values.child) return await child(values.child, values.file!, values.dir);
  const mb = numberFlag(values.mb, "mb", { min: 1 });
  await Deno.mkdir(values.dir, { recursive: true });
  const file = join(values.dir, `text_${mb}MB.txt`);
  await generate(file, mb * MB);
  const size = (await Deno.stat(file)).size;
  console.log(
    `# data throughput, ${
      (size / MB).toFixed(0)
    } MB of text (${file}), ${navigator.hardwareConcurrency} CPUs\n`,
  );
  console.log("| prepare | MB/s of text | tokens | seconds | peak RSS (VmHWM) |");
  console.log("| --- | --- | --- | --- | --- |");
  const modes = [
    "prepare-gpt2",
    "prepare-bytes",
    "prepare-sentencepiece",
    "prepare-tokenizer.json",
    ...(values["no-baseline"] ? [] : ["whole-gpt2"]),
  ];
  for (const mode of modes) {
    const r = await runChild(mode, file, join(values.dir, mode));
    const name = mode === "whole-gpt2" ? "baseline: whole file, gpt2" : `streaming, ${mode.slice(8)}`;
    console.log(
      `| ${name} | ${(size / MB / r.seconds).toFixed(2)} | ${r.tokens.toLocaleString("en-US")} | ${
        r.seconds.toFixed(1)
      } | ${r.peakMB.toFixed(0)} MB |`,
    );
  }

  const B = 8;
  const T = 1024;
  const folder = join(values.dir, "prepare-gpt2");
  console.log(`\n| read (B=${B}, T=${T}, one epoch of the gpt2 train split) | tokens/s | seconds |`);
  console.log("| --- | --- | --- |");
  const shard = join(folder, "train_000000.bin");
  const baseline = readerRate(() => {
    const bytes = Deno.readFileSync(shard);
    const tokens = new Uint16Array(bytes.buffer, HEADER_BYTES);
    const windows = Math.floor((tokens.length - 1) / T);
    let n = 0;
    for (let w = 0; w + B <= windows; w += B) {
      const inputs = new Uint32Array(B * T);
      const targets = new Uint32Array(B * T);
      for (let b = 0; b < B; b++) {
        inputs.set(tokens.subarray((w + b) * T, (w + b) * T + T), b * T);
        targets.set(tokens.subarray((w + b) * T + 1, (w + b) * T + T + 1), b * T);
      }
      n += B * T;
    }
    return n;
  });
  console.log(
    `| baseline: shard read whole, windows copied | ${baseline.tokensPerSecond.toExponential(2)} | ${
      baseline.seconds.toFixed(2)
    } |`,
  );
  for (const mmap of [true, false]) {
    for (const shuffle of [false, true]) {
      const t0 = performance.now();
      using data = await openDataset(folder, { mmap, vocabSize: 50257 });
      const opened = (performance.now() - t0) / 1000;
      const sampler = new BatchSampler(data.split("train"), { B, T, shuffle, seed: 1 });
      const steps = Math.floor(sampler.windowsPerEpoch / B);
      const rate = readerRate(() => {
        for (let i = 0; i < steps; i++) sampler.next();
        return steps * B * T;
      });
      const seconds = rate.seconds + opened;
      console.log(
        `| BatchSampler, ${data.mapped ? "mmap" : "positioned reads"}, ${
          shuffle ? "shuffled" : "sequential"
        } (open + validate ${opened.toFixed(2)} s) | ${(steps * B * T / seconds).toExponential(2)} | ${
          seconds.toFixed(2)
        } |`,
      );
    }
  }
}

if (import.meta.main) Deno.exit(await runCommand("throughput", main));
