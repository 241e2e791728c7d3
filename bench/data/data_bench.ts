/**
 * `deno bench` view of the data path, each group against a baseline: preparing 2 MB of text
 * (streaming vs. the whole text encoded at once) and reading 64 batches of (8, 256) tokens
 * (BatchSampler vs. slicing an in-memory copy of the shard). For MB/s, tokens/s and peak memory
 * at scale, run `bench/data/throughput.ts`.
 */
import { join } from "node:path";
import {
  BatchSampler,
  CORPORA,
  DOCUMENT_SEPARATOR,
  HEADER_BYTES,
  loadTokenizer,
  openDataset,
  prepare,
} from "@inheritune/data";

const dir = await Deno.makeTempDir({ prefix: "data_bench_" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
const brown = CORPORA.brown;
const docs: string[] = [];
for (const f of (await brown.files()).slice(0, 170)) docs.push(brown.toText(await Deno.readTextFile(f.path)));
const textFile = join(dir, "text.txt");
await Deno.writeTextFile(textFile, docs.join(DOCUMENT_SEPARATOR));
const gpt2 = await loadTokenizer("gpt2");
const prepared = join(dir, "prepared");
await prepare({ inputs: [textFile], out: prepared, valFraction: 0 });

Deno.bench(
  { name: "whole text: decode + gpt2 encode (baseline)", group: "prepare 2 MB", baseline: true },
  async () => {
    const text = new TextDecoder().decode(await Deno.readFile(textFile));
    for (const doc of text.split(DOCUMENT_SEPARATOR)) gpt2.encode(doc);
  },
);

Deno.bench({ name: "prepare, streaming, gpt2", group: "prepare 2 MB" }, async () => {
  await prepare({ inputs: [textFile], out: join(dir, "gpt2"), valFraction: 0.05 });
});

const tok512 = new URL("../../models/stories260K/tokenizer.model", import.meta.url).pathname;
Deno.bench({ name: "prepare, streaming, sentencepiece (tok512)", group: "prepare 2 MB" }, async () => {
  await prepare({ inputs: [textFile], out: join(dir, "sp"), tokenizer: tok512, valFraction: 0.05 });
});

Deno.bench({ name: "prepare, streaming, bytes", group: "prepare 2 MB" }, async () => {
  await prepare({ inputs: [textFile], out: join(dir, "bytes"), tokenizer: "bytes", valFraction: 0.05 });
});

const B = 8;
const T = 256;
const STEPS = 64;
const shardBytes = await Deno.readFile(join(prepared, "train_000000.bin"));

Deno.bench(
  { name: "in-memory shard, windows copied (baseline)", group: "read 64 x (8,256)", baseline: true },
  () => {
    const tokens = new Uint16Array(shardBytes.buffer, HEADER_BYTES);
    for (let step = 0; step < STEPS; step++) {
      const inputs = new Uint32Array(B * T);
      const targets = new Uint32Array(B * T);
      for (let b = 0; b < B; b++) {
        const start = (step * B + b) * T;
        inputs.set(tokens.subarray(start, start + T), b * T);
        targets.set(tokens.subarray(start + 1, start + T + 1), b * T);
      }
    }
  },
);

for (const mmap of [true, false]) {
  const data = await openDataset(prepared, { mmap });
  for (const shuffle of [false, true]) {
    const sampler = new BatchSampler(data.split("train"), { B, T, shuffle, seed: 1 });
    Deno.bench({
      name: `BatchSampler, ${mmap ? "mmap" : "positioned reads"}, ${shuffle ? "shuffled" : "sequential"}`,
      group: "read 64 x (8,256)",
    }, () => {
      for (let step = 0; step < STEPS; step++) sampler.next();
    });
  }
}
