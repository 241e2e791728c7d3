/**
 * `prepare` throughput with 1 and N tokenizer threads, next to the Rust `tokenizers` library's
 * `encode_batch` on the same text in the same run, and peak memory on a large `.jsonl.zst`:
 *
 *   deno run -A --unstable-ffi bench/data/prepare_workers.ts [--mb 16] [--workers N]
 *     [--tokenizers ../shared/tokenizers] [--python /tmp/venvdata/bin/python] [--rss-gb 2] [--dir DIR]
 *
 * Generates DIR/stories_<mb>MB.jsonl (TinyStories paragraphs, repeated, one `{"text": ...}` per
 * line), then, each in a fresh process so that its peak resident memory (VmHWM, worker threads
 * included) is its own, prepares it with GPT-2 (gpt-tokenizer), Llama 2's SentencePiece
 * `tokenizer.model` (ours), Llama 3's and Qwen2's `tokenizer.json` (Tokenizers.js), with 1 and N
 * workers. With `--python` (a venv with `tokenizers`), `bench/data/hf_encode_batch.py` encodes
 * the same texts with the same tokenizers (GPT-2's as a tokenizer.json written from
 * gpt-tokenizer's ranks, Llama 2's Hugging Face conversion) with 1 and N rayon threads; its time
 * is `encode_batch` alone, ours the whole prepare (reading, JSON, writing shards). MB/s are of the
 * JSONL file and leave out the setup (loading the tokenizer in every thread), which does not grow
 * with the input; the seconds column shows both. With `--rss-gb G`, it also writes G GB of such JSONL as one `.jsonl.zst` (deleted
 * afterwards, as are the shards) and prepares it with GPT-2 and N workers, reporting peak RSS.
 * The load average is printed before and after: on a shared machine the numbers move with it.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createZstdCompress } from "node:zlib";
import { builtinByteLevelModel, byteLevelBpeJson, prepare, writeAll } from "@inheritune/data";
import { numberFlag } from "../../cli/_flags.ts";
import { runCommand } from "../../cli/_run.ts";
import { peakMemory } from "../_memory.ts";

const MB = 1e6;
const ROOT = new URL("../../", import.meta.url).pathname;
const STORIES = join(ROOT, "corpora/tinystories/valid_head.txt");

interface Run {
  /** Whole run, process start excluded. */
  seconds: number;
  /** Of which before the first chunk was read: loading the tokenizer in every thread. */
  setup: number;
  tokens: number;
  peakMB: number;
}

/** JSON lines of TinyStories paragraphs, repeated to `bytes`; written to `sink` in ~1 MB pieces. */
async function writeStories(bytes: number, sink: (piece: Uint8Array) => Promise<void>): Promise<void> {
  const paragraphs = (await Deno.readTextFile(STORIES)).split("\n\n").map((p) => p.trim()).filter((p) => p);
  const encoder = new TextEncoder();
  let lines: string[] = [];
  let size = 0;
  for (let written = 0, i = 0; written < bytes; i++) {
    const line = JSON.stringify({ id: i, text: paragraphs[i % paragraphs.length] }) + "\n";
    lines.push(line);
    size += line.length;
    if (size >= MB || written + size >= bytes) {
      const piece = encoder.encode(lines.join(""));
      await sink(piece);
      written += piece.length;
      lines = [];
      size = 0;
    }
  }
}

async function generate(path: string, bytes: number): Promise<void> {
  try {
    if ((await Deno.stat(path)).size >= bytes) return;
  } catch {
    // not there yet
  }
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  await writeStories(bytes, (piece) => writeAll(file, piece));
}

/** `bytes` of JSON lines as one zstd stream at `path` (node:zlib's compressor). */
async function generateZstd(path: string, bytes: number): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  const zstd = createZstdCompress();
  const drained = (async () => {
    for await (const chunk of zstd) await writeAll(file, chunk);
  })();
  const writer = Writable.toWeb(zstd).getWriter();
  await writeStories(bytes, (piece) => writer.write(piece));
  await writer.close();
  await drained;
}

/** One prepare in this process; prints a JSON line. */
async function child(file: string, spec: string, workers: number, out: string): Promise<void> {
  const started = performance.now();
  let setup = NaN;
  const meta = await prepare({
    inputs: [file],
    out,
    tokenizer: spec,
    workers,
    valFraction: 0.01,
    onProgress: () => setup = Number.isNaN(setup) ? (performance.now() - started) / 1000 : setup,
  });
  const seconds = (performance.now() - started) / 1000;
  const tokens = meta.splits.train.tokens + (meta.splits.val?.tokens ?? 0);
  console.log(JSON.stringify({ seconds, setup, tokens, peakMB: peakMemory() / 2 ** 20 }));
}

async function runChild(file: string, spec: string, workers: number, out: string): Promise<Run> {
  const args = ["run", "-A", "--unstable-ffi", new URL(import.meta.url).pathname, "--child", spec];
  args.push("--file", file, "--workers", String(workers), "--dir", out);
  const r = await new Deno.Command(Deno.execPath(), { args, stderr: "inherit" }).output();
  if (r.code !== 0) throw new Error(`prepare with ${spec} failed`);
  return JSON.parse(new TextDecoder().decode(r.stdout).trim().split("\n").at(-1)!);
}

async function runPython(python: string, file: string, tokenizer: string, threads: number): Promise<Run> {
  const r = await new Deno.Command(python, {
    args: [join(ROOT, "bench/data/hf_encode_batch.py"), file, tokenizer],
    env: { RAYON_NUM_THREADS: String(threads), TOKENIZERS_PARALLELISM: "true" },
    stderr: "inherit",
  }).output();
  if (r.code !== 0) throw new Error(`hf_encode_batch.py with ${tokenizer} failed`);
  return { ...JSON.parse(new TextDecoder().decode(r.stdout).trim()), setup: 0, peakMB: NaN };
}

function load(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      mb: { type: "string", default: "16" },
      workers: { type: "string", default: String(navigator.hardwareConcurrency) },
      tokenizers: { type: "string", default: join(ROOT, "../shared/tokenizers") },
      python: { type: "string" },
      "rss-gb": { type: "string", default: "0" },
      dir: { type: "string", default: "/tmp/inheritune_prepare_bench" },
      child: { type: "string" },
      file: { type: "string" },
    },
  });
  const workers = numberFlag(values.workers, "workers", { min: 1, integer: true });
  if (values.child) return await child(values.file!, values.child, workers, values.dir);
  const mb = numberFlag(values.mb, "mb", { min: 1 });
  const rssGb = numberFlag(values["rss-gb"], "rss-gb", { min: 0 });
  await Deno.mkdir(values.dir, { recursive: true });
  const file = join(values.dir, `stories_${mb}MB.jsonl`);
  await generate(file, mb * MB);
  const size = (await Deno.stat(file)).size;
  const gpt2Json = join(values.dir, "gpt2_tokenizer.json");
  await Deno.writeTextFile(
    gpt2Json,
    JSON.stringify(byteLevelBpeJson((await builtinByteLevelModel("gpt2"))!)),
  );
  const shared = values.tokenizers;
  const tokenizers = [
    { name: "GPT-2 BPE (gpt-tokenizer)", spec: "gpt2", hf: gpt2Json },
    {
      name: "Llama 2 SentencePiece (ours)",
      spec: join(shared, "llama2/tokenizer.model"),
      hf: join(shared, "llama2/tokenizer.json"),
    },
    {
      name: "Llama 3 tokenizer.json (Tokenizers.js)",
      spec: join(shared, "llama3/tokenizer.json"),
      hf: join(shared, "llama3/tokenizer.json"),
    },
    {
      name: "Qwen2 tokenizer.json (Tokenizers.js)",
      spec: join(shared, "qwen2"),
      hf: join(shared, "qwen2/tokenizer.json"),
    },
  ];
  console.log(
    `# prepare throughput, ${
      (size / MB).toFixed(1)
    } MB of JSONL (${file}), ${navigator.hardwareConcurrency} CPUs, ` +
      `load average ${load()} at the start\n`,
  );
  console.log(
    "| tokenizer | run | MB/s | tokens/s | tokens | seconds (of which setup) | peak RSS | 1B tokens at this rate |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
  // Rates leave out the setup (tokenizers loading), which does not grow with the input.
  const row = (name: string, what: string, r: Run): void => {
    const busy = r.seconds - r.setup;
    const hours = 1e9 / (r.tokens / busy) / 3600;
    const rss = Number.isNaN(r.peakMB) ? "-" : `${r.peakMB.toFixed(0)} MB`;
    console.log(
      `| ${name} | ${what} | ${(size / MB / busy).toFixed(2)} | ${(r.tokens / busy).toExponential(2)} | ` +
        `${r.tokens.toLocaleString("en-US")} | ${r.seconds.toFixed(1)} (${r.setup.toFixed(1)}) | ${rss} | ` +
        `${hours.toFixed(1)} h |`,
    );
  };
  for (const t of tokenizers) {
    for (const w of [1, workers]) {
      row(t.name, `prepare, ${w} worker(s)`, await runChild(file, t.spec, w, join(values.dir, "out")));
    }
    if (values.python) {
      for (const threads of [1, workers]) {
        row(
          t.name,
          `tokenizers encode_batch, ${threads} thread(s)`,
          await runPython(values.python, file, t.hf, threads),
        );
      }
    }
  }
  if (rssGb > 0) {
    const big = join(values.dir, `stories_${rssGb}GB.jsonl.zst`);
    await generateZstd(big, rssGb * 1e9);
    const r = await runChild(big, "gpt2", workers, join(values.dir, "rss_out"));
    console.log(
      `\n${rssGb} GB of JSONL as ${
        ((await Deno.stat(big)).size / MB).toFixed(1)
      } MB of .jsonl.zst, gpt2, ${workers} workers: ` +
        `${r.tokens.toLocaleString("en-US")} tokens in ${r.seconds.toFixed(0)} s (${
          (rssGb * 1e9 / MB / (r.seconds - r.setup)).toFixed(1)
        } MB/s of JSONL), peak RSS ${r.peakMB.toFixed(0)} MB`,
    );
    await Deno.remove(big);
    await Deno.remove(join(values.dir, "rss_out"), { recursive: true });
  }
  console.log(`\nload average ${load()} at the end`);
}

if (import.meta.main) Deno.exit(await runCommand("prepare_workers", main));
