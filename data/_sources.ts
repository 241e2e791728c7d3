/**
 * The files behind `prepare`'s inputs, listed in a stable order, and their bytes as a stream.
 *
 * A file's form comes from its name: `.jsonl` / `.ndjson` (JSON Lines), `.json` (an array of
 * objects, or JSON Lines when it does not start with `[`), `.parquet`, anything else text; each
 * may end in `.gz` or `.zst` / `.zstd`. Decompression: gzip through `node:zlib`, which reads
 * concatenated members (bgzip, `cat a.gz b.gz`), where the built-in `DecompressionStream("gzip")`
 * fails on the second member; zstd through the pure-JS `fzstd`, since Deno 2.9.6's
 * `DecompressionStream` has no "zstd" and its `node:zlib` zstd stream stops after the first frame
 * (files written by `zstd -T` / `pzstd` or concatenated hold several).
 *
 * @module
 */
import { Duplex } from "node:stream";
import { createGunzip } from "node:zlib";
import { join, resolve } from "node:path";
import { Decompress } from "fzstd";
import { CORPORA, type Corpus } from "./corpus.ts";
import { DataError } from "./errors.ts";

/** How a file's bytes hold documents. */
export type SourceFormat = "text" | "jsonl" | "json" | "parquet";

/** How a file's bytes are compressed. */
export type Compression = "none" | "gzip" | "zstd";

/** One file `prepare` reads. */
export interface Source {
  /** The `--input` it came from. */
  readonly input: string;
  /** Name in meta.json and errors. */
  readonly name: string;
  /** Where it is on disk. */
  readonly path: string;
  /** Bytes on disk. */
  readonly size: number;
  /** How it holds documents. */
  readonly format: SourceFormat;
  /** How it is compressed. */
  readonly compression: Compression;
  /** Set for a built-in corpus file: the file is one document, converted to text. */
  readonly corpus?: Corpus;
}

const COMPRESSIONS: [string, Compression][] = [[".gz", "gzip"], [".zst", "zstd"], [".zstd", "zstd"]];
const FORMATS: [string, SourceFormat][] = [
  [".jsonl", "jsonl"],
  [".ndjson", "jsonl"],
  [".json", "json"],
  [".parquet", "parquet"],
];

/** The form and compression a file's name says it has. */
export function sourceForm(path: string): { format: SourceFormat; compression: Compression } {
  let name = path.toLowerCase();
  let compression: Compression = "none";
  for (const [ext, c] of COMPRESSIONS) {
    if (name.endsWith(ext)) {
      compression = c;
      name = name.slice(0, -ext.length);
    }
  }
  const format = FORMATS.find(([ext]) => name.endsWith(ext))?.[1] ?? "text";
  return { format, compression };
}

/**
 * Every file behind `inputs`, in the order given and folders recursively in sorted name order,
 * leaving out hidden files and the folder `skip` (the output).
 *
 * @throws {DataError} for an input that is no file, folder or built-in corpus, or an empty folder.
 */
export async function listSources(inputs: readonly string[], skip: string): Promise<Source[]> {
  const sources: Source[] = [];
  const add = (input: string, path: string, size: number): void => {
    sources.push({ input, name: path, path, size, ...sourceForm(path) });
  };
  for (const input of inputs) {
    let info: Deno.FileInfo | null = null;
    try {
      info = await Deno.stat(input);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (!info) {
      const corpus = Object.hasOwn(CORPORA, input) ? CORPORA[input] : undefined;
      if (!corpus) {
        throw new DataError(
          `input ${input}: no such file, folder or built-in corpus (built-in: ${
            Object.keys(CORPORA).join(", ")
          })`,
        );
      }
      for (const f of await corpus.files()) {
        sources.push({
          input,
          name: f.name,
          path: f.path,
          size: f.size,
          format: "text",
          compression: "none",
          corpus,
        });
      }
    } else if (info.isDirectory) {
      const before = sources.length;
      await walk(input, resolve(skip), (path, size) => add(input, path, size));
      if (sources.length === before) throw new DataError(`input ${input}: folder holds no files`);
    } else {
      add(input, input, info.size);
    }
  }
  return sources;
}

/** Calls `add` for every non-hidden file under `dir`, in sorted path order, skipping the folder `skip`. */
async function walk(dir: string, skip: string, add: (path: string, size: number) => void): Promise<void> {
  if (resolve(dir) === skip) return;
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (!e.name.startsWith(".")) names.push(e.name);
  for (const name of names.sort()) {
    const path = join(dir, name);
    const info = await Deno.stat(path);
    if (info.isDirectory) await walk(path, skip, add);
    else if (info.isFile) add(path, info.size);
  }
}

/** Options of {@linkcode sourceBytes}. */
export interface SourceBytesOptions {
  /** Bytes read from disk at a time. */
  chunkBytes: number;
  /** Called with every piece of the file as read from disk (compressed), e.g. to hash it. */
  onRead?: (raw: Uint8Array) => void;
}

/**
 * The bytes of `source` after decompression, in pieces; each piece may be used only until the
 * next is requested.
 *
 * @throws {DataError} naming the file when its compressed stream is corrupt or cut short.
 */
export async function* sourceBytes(source: Source, options: SourceBytesOptions): AsyncGenerator<Uint8Array> {
  using file = await Deno.open(source.path);
  const buf = new Uint8Array(options.chunkBytes);
  if (source.compression === "none") {
    for (let n; (n = await readFull(file, buf)) > 0;) {
      options.onRead?.(buf.subarray(0, n));
      yield buf.subarray(0, n);
    }
    return;
  }
  const raw = new ReadableStream<Uint8Array>({
    async pull(controller): Promise<void> {
      const n = await readFull(file, buf);
      if (n === 0) return controller.close();
      const chunk = buf.slice(0, n);
      options.onRead?.(chunk);
      controller.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
  const stream = raw.pipeThrough(source.compression === "gzip" ? gunzip() : unzstd());
  try {
    for await (const chunk of stream) yield chunk;
  } catch (e) {
    if (e instanceof DataError) throw e;
    const what = source.compression === "gzip" ? "gzip" : "zstd";
    throw new DataError(`${source.name}: not valid ${what} data (${(e as Error).message.split("\n")[0]})`);
  }
}

function gunzip(): TransformStream<Uint8Array, Uint8Array> {
  return Duplex.toWeb(createGunzip()) as unknown as TransformStream<Uint8Array, Uint8Array>;
}

function unzstd(): TransformStream<Uint8Array, Uint8Array> {
  let decoder: Decompress;
  return new TransformStream({
    start(controller): void {
      decoder = new Decompress((chunk: Uint8Array) => {
        if (chunk.length > 0) controller.enqueue(chunk);
      });
    },
    transform(chunk): void {
      decoder.push(chunk);
    },
    flush(): void {
      decoder.push(new Uint8Array(0), true);
    },
  });
}

/** Reads until `buf` is full or the file ends; returns the bytes read. */
export async function readFull(file: Deno.FsFile, buf: Uint8Array): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const n = await file.read(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  return got;
}
