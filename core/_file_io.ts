/**
 * File helpers for checkpoints: the error of a checkpoint file, opening one for reading, writes
 * that land atomically (a temporary name in the same folder, synced, then renamed over the target),
 * a file's size and SHA-256, folders removed without ever being seen half-removed, and exact
 * positional reads.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { UserError } from "@inheritune/data";
import { ConfigError, type ModelConfig, validateConfig } from "./config.ts";
import { paramSpecs } from "./model.ts";
import { numel } from "./params.ts";

/** A checkpoint file that cannot be read or written; the one-line message names the file and the problem. */
export class CheckpointError extends UserError {
  /** Creates the error with its one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

/** Options of {@linkcode checkedConfig}. */
export interface CheckedConfigOptions {
  /**
   * The most parameters the weight files can hold (their elements, or their bytes over the
   * fewest bytes an element takes): a configuration of more is refused before anything is
   * allocated for it, as a corrupt `n_layer` of 10⁹ would otherwise exhaust memory.
   */
  maxParams?: number;
}

/**
 * `validateConfig` for a configuration read from the checkpoint file `path`, and, given
 * `options.maxParams`, a check that the weights can hold that many parameters.
 *
 * @throws {CheckpointError} `"<path>: <what is wrong>"` when the configuration is invalid or
 * implausible for the weights.
 */
export function checkedConfig<C extends ModelConfig>(
  path: string,
  config: C,
  options: CheckedConfigOptions = {},
): C {
  try {
    validateConfig(config);
  } catch (e) {
    if (e instanceof ConfigError) throw new CheckpointError(`${path}: ${e.message}`);
    throw e;
  }
  const { maxParams } = options;
  if (maxParams === undefined) return config;
  // Counted from a one-block table, so that a huge n_layer costs nothing.
  let perBlock = 0, outside = 0;
  for (const spec of paramSpecs({ ...config, n_layer: 1 })) {
    if (spec.layer >= 0) perBlock += numel(spec.shape);
    else outside += numel(spec.shape);
  }
  const total = outside + config.n_layer * perBlock;
  if (total > maxParams) {
    // One block too many already: the widths are wrong, else the depth.
    const fields = outside + perBlock > maxParams
      ? `n_embd ${config.n_embd} and vocab_size ${config.vocab_size} are`
      : `n_layer ${config.n_layer} is`;
    throw new CheckpointError(
      `${path}: config ${fields} implausible: the model would have ${total} parameters, ` +
        `the weights hold at most ${maxParams}`,
    );
  }
  return config;
}

/**
 * Opens the checkpoint file `path` for reading, with its size.
 *
 * @throws {CheckpointError} `"<path>: cannot open (<reason>)"` when it cannot be opened.
 */
export async function openCheckpointFile(path: string): Promise<{ file: Deno.FsFile; size: number }> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw new CheckpointError(`${path}: cannot open (${(e as Error).message})`);
  }
  try {
    return { file, size: (await file.stat()).size };
  } catch (e) {
    file.close();
    throw e;
  }
}

/** A file fully written under a temporary name, waiting to be renamed over its target. */
export interface PendingFile {
  /** Renames the temporary file into place. */
  commit(): Promise<void>;
  /** Removes the temporary file, leaving the target as it was. */
  discard(): Promise<void>;
}

/**
 * Writes a file next to `path` under a temporary name with `write`, synced to disk. The target is
 * untouched until `commit`; if `write` fails the temporary file is removed and the error rethrown.
 */
export async function writeTemp(
  path: string,
  write: (file: Deno.FsFile) => Promise<void>,
): Promise<PendingFile> {
  const tmp = tempName(path);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(tmp, { write: true, createNew: true });
  } catch (e) {
    throw writeError(path, e);
  }
  try {
    await write(file);
    // Sync before the rename, or a crash could leave the new name pointing at unwritten blocks.
    await file.syncData();
  } catch (e) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw writeError(path, e);
  }
  file.close();
  return {
    async commit() {
      try {
        await Deno.rename(tmp, path);
      } catch (e) {
        throw writeError(path, e);
      }
    },
    discard: () => Deno.remove(tmp),
  };
}

/** A fresh hidden name beside `path` ending in `suffix`, for a file or folder not yet in place. */
export function tempName(path: string, suffix = ".tmp"): string {
  return join(dirname(path), `.${basename(path)}.${crypto.randomUUID().slice(0, 8)}${suffix}`);
}

/**
 * `e`, thrown while writing `path`, as the error to report: an operating system's error (a full
 * disk, a read-only or vanished folder) becomes a {@linkcode CheckpointError} naming the file, as
 * the system's message does not; anything else is returned as it is.
 */
export function writeError(path: string, e: unknown): unknown {
  if (e instanceof UserError || !(e instanceof Error) || typeof (e as { code?: unknown }).code !== "string") {
    return e;
  }
  return new CheckpointError(`${path}: cannot write (${e.message.split("\n")[0]})`);
}

/** Bytes hashed per read: a large file is hashed without holding it in memory. */
const DIGEST_CHUNK = 1 << 23;

/** Size and SHA-256 (hex) of the file at `path`, read in chunks. */
export async function fileDigest(path: string): Promise<{ bytes: number; sha256: string }> {
  using file = await Deno.open(path, { read: true });
  const hash = createHash("sha256");
  const buffer = new Uint8Array(DIGEST_CHUNK);
  let bytes = 0;
  for (let n = await file.read(buffer); n !== null; n = await file.read(buffer)) {
    hash.update(buffer.subarray(0, n));
    bytes += n;
  }
  return { bytes, sha256: hash.digest("hex") };
}

/**
 * Flushes `dir`'s entries (a rename into it) to disk where the platform can, so that a power cut
 * cannot undo a rename that readers have already seen; elsewhere does nothing.
 */
export async function syncFolder(dir: string): Promise<void> {
  try {
    using folder = await Deno.open(dir, { read: true });
    await folder.sync();
  } catch {
    // Folders cannot be opened as files on Windows; renames there are durable on their own.
  }
}

/**
 * Removes the folder `dir` by renaming it to a hidden `.old` name first: a process killed
 * meanwhile leaves that name, never a half-emptied folder under the old one. Does nothing when
 * `dir` does not exist.
 */
export async function retireFolder(dir: string): Promise<void> {
  const old = tempName(dir, ".old");
  try {
    await Deno.rename(dir, old);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  await Deno.remove(old, { recursive: true });
}

/** Writes `path` atomically: readers see either the old file or the complete new one. */
export async function writeAtomic(path: string, write: (file: Deno.FsFile) => Promise<void>): Promise<void> {
  await (await writeTemp(path, write)).commit();
}

/** Fills `buf` from `file` at byte `position`; returns false when the file ends first. */
export async function readAt(file: Deno.FsFile, position: number, buf: Uint8Array): Promise<boolean> {
  await file.seek(position, Deno.SeekMode.Start);
  for (let n = 0; n < buf.length;) {
    const got = await file.read(buf.subarray(n));
    if (got === null) return false;
    n += got;
  }
  return true;
}
