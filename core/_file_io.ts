/**
 * File helpers for checkpoints: the error of a checkpoint file, opening one for reading, writes
 * that land atomically (a temporary name in the same folder, synced, then renamed over the target)
 * and exact positional reads.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { UserError } from "@inheritune/data";
import { ConfigError, type ModelConfig, validateConfig } from "./config.ts";

/** A checkpoint file that cannot be read or written; the one-line message names the file and the problem. */
export class CheckpointError extends UserError {
  /** Creates the error with its one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

/**
 * `validateConfig` for a configuration read from the checkpoint file `path`.
 *
 * @throws {CheckpointError} `"<path>: <what is wrong>"` when the configuration is invalid.
 */
export function checkedConfig<C extends ModelConfig>(path: string, config: C): C {
  try {
    return validateConfig(config);
  } catch (e) {
    if (e instanceof ConfigError) throw new CheckpointError(`${path}: ${e.message}`);
    throw e;
  }
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
  const tmp = join(dirname(path), `.${basename(path)}.${crypto.randomUUID().slice(0, 8)}.tmp`);
  const file = await Deno.open(tmp, { write: true, createNew: true });
  try {
    await write(file);
    // Sync before the rename, or a crash could leave the new name pointing at unwritten blocks.
    await file.syncData();
  } catch (e) {
    file.close();
    await Deno.remove(tmp);
    throw e;
  }
  file.close();
  return {
    commit: () => Deno.rename(tmp, path),
    discard: () => Deno.remove(tmp),
  };
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
