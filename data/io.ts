/**
 * File output shared by the members: shards here, checkpoints and training state in core; and
 * the SHA-256 of a file, which `meta.json` records for every shard and input.
 *
 * @module
 */
import { createHash } from "node:crypto";

/** Writes all of `bytes` to `file` (one `write` may write fewer). */
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let n = 0; n < bytes.length;) n += await file.write(bytes.subarray(n));
}

/** SHA-256 (hex) of the file at `path`, read in 4 MiB pieces. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const buf = new Uint8Array(1 << 22);
  for (let n; (n = await file.read(buf)) !== null;) hash.update(buf.subarray(0, n));
  return hash.digest("hex");
}
