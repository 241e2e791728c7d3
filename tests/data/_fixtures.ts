/** Helpers shared by the data tests: reading a prepared folder back and hashing its files. */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { openDataset } from "@inheritune/data";

/** Every token of `split` in the prepared folder `dir`. */
export async function readSplit(dir: string, split: string): Promise<number[]> {
  using data = await openDataset(dir);
  const source = data.split(split);
  return [...source.read(0, source.length)];
}

/** SHA-256 (hex) of every file in `dir`, by name. */
export async function hashFiles(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  for (const name of names) {
    out[name] = createHash("sha256").update(await Deno.readFile(join(dir, name))).digest("hex");
  }
  return out;
}
