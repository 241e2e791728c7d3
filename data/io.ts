/**
 * File output shared by the members: shards here, checkpoints and training state in core.
 *
 * @module
 */

/** Writes all of `bytes` to `file` (one `write` may write fewer). */
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let n = 0; n < bytes.length;) n += await file.write(bytes.subarray(n));
}
