/**
 * The loader fuzz findings of issue 23, each through the command line: a corrupt file is refused
 * with one line naming the file and the field, exit 2, in well under a second more than a
 * refusal that reads nothing, and nothing is written. Before the fixes a GGUF `block_count` of
 * 2³¹ and a config.json `num_hidden_layers` of 10⁹ ran out of memory after ~54 s, a safetensors
 * header one byte short and an unaligned GGUF tensor offset were accepted, and a tokenizer.json id
 * of 10⁹ spun for 51 s.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { saveModel } from "@inheritune/core";
import { llamaGguf, tinyLlama } from "../core/_model_files.ts";
import { runCli, withTempDir } from "../_util.ts";

const exists = (path: string): Promise<boolean> => Deno.stat(path).then(() => true, () => false);

/** Seconds `args` takes to run, with its result. */
async function timed(args: string[]) {
  const start = performance.now();
  const r = await runCli(args);
  return { ...r, seconds: (performance.now() - start) / 1000 };
}

/** A little-endian u64 written into `bytes` at `at`. */
function setU64(bytes: Uint8Array, at: number, value: bigint): void {
  new DataView(bytes.buffer, bytes.byteOffset).setBigUint64(at, value, true);
}

/** Where `text` first occurs in `bytes` (its UTF-8 encoding, which here is ASCII). */
function indexOf(bytes: Uint8Array, text: string): number {
  return new TextDecoder("latin1").decode(bytes).indexOf(text);
}

const inherit = (reference: string) => (out: string): string[] => [
  "inherit",
  "--reference",
  reference,
  "--layers",
  "1",
  "--out",
  out,
];

/** One corrupt input: `make` writes it into `dir` and gives the command line (writing to `out`). */
interface FuzzCase {
  what: string;
  make: (dir: string) => Promise<(out: string) => string[]>;
  error: RegExp;
}

const CASES: FuzzCase[] = [
  {
    what: "a GGUF block_count of 2^31",
    make: async (dir) => {
      // llama.block_count's u32 value follows its key and the value type.
      const gguf = llamaGguf(tinyLlama());
      new DataView(gguf.buffer).setUint32(indexOf(gguf, "llama.block_count") + 17 + 4, 2 ** 31, true);
      await Deno.writeFile(join(dir, "deep.gguf"), gguf);
      return inherit(join(dir, "deep.gguf"));
    },
    error:
      /deep\.gguf: config n_layer 2147483648 is implausible: the model would have \d+ parameters, the weights hold at most \d+$/,
  },
  {
    what: "an unaligned GGUF tensor offset",
    make: async (dir) => {
      // The offset u64 follows the name, the dimension count, one u64 dimension and the type.
      const gguf = llamaGguf(tinyLlama());
      const name = "blk.0.attn_norm.weight";
      const at = indexOf(gguf, name) + name.length + 4 + 8 + 4;
      setU64(gguf, at, new DataView(gguf.buffer).getBigUint64(at, true) + 4n);
      await Deno.writeFile(join(dir, "unaligned.gguf"), gguf);
      return inherit(join(dir, "unaligned.gguf"));
    },
    error:
      /unaligned\.gguf: tensor blk\.0\.attn_norm\.weight: data offset \d+ is not a multiple of general\.alignment 32$/,
  },
  {
    what: "a config.json num_hidden_layers of 1e9",
    make: async (dir) => {
      const folder = join(dir, "hf");
      await saveModel(folder, tinyLlama());
      const config = JSON.parse(await Deno.readTextFile(join(folder, "config.json")));
      await Deno.writeTextFile(
        join(folder, "config.json"),
        JSON.stringify({ ...config, num_hidden_layers: 1e9 }),
      );
      return inherit(folder);
    },
    error: /hf\/config\.json: config n_layer 1000000000 is implausible/,
  },
  {
    what: "a safetensors header length one byte short",
    make: async (dir) => {
      // One space more in the header than its length claims: the data would start a byte early.
      const folder = join(dir, "short");
      await saveModel(folder, tinyLlama());
      const file = await Deno.readFile(join(folder, "model.safetensors"));
      const n = Number(new DataView(file.buffer).getBigUint64(0, true));
      const bytes = new Uint8Array(file.length + 1);
      bytes.set(file.subarray(0, 8 + n));
      bytes[8 + n] = 0x20;
      bytes.set(file.subarray(8 + n), 9 + n);
      await Deno.writeFile(join(folder, "model.safetensors"), bytes);
      return inherit(folder);
    },
    error:
      /short\/model\.safetensors: the tensors' data ends at byte \d+ of the \d+-byte data section \(wrong header length\?\)$/,
  },
  {
    what: "a tokenizer.json vocabulary id of 1e9",
    make: async (dir) => {
      const tokenizer = {
        added_tokens: [],
        normalizer: null,
        post_processor: null,
        model: { type: "BPE", vocab: { a: 0, b: 1, c: 1e9 }, merges: [] },
        pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
        decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
      };
      await Deno.writeTextFile(join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
      await Deno.writeTextFile(join(dir, "text.txt"), "abc cab\n\nbca\n");
      return (
        out,
      ) => [
        "prepare",
        "--input",
        join(dir, "text.txt"),
        "--tokenizer",
        join(dir, "tokenizer.json"),
        "--out",
        out,
      ];
    },
    error: /tokenizer\.json: model\.vocab id 1000000000 of "c" is outside the vocabulary of 3 tokens$/,
  },
];

for (const { what, make, error } of CASES) {
  Deno.test(`${what}: one line, exit 2, under a second, nothing written`, async () => {
    await withTempDir(async (dir) => {
      const out = join(dir, "out");
      // What starting the command and refusing costs, to tell the loader's own time from it.
      const baseline = await timed(inherit(join(dir, "absent.gguf"))(out));
      assert.equal(baseline.code, 2, baseline.stderr);
      const r = await timed((await make(dir))(out));
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr.trim(), error);
      assert.ok(
        r.seconds - baseline.seconds < 1,
        `${r.seconds.toFixed(2)} s, a refusal that reads nothing ${baseline.seconds.toFixed(2)} s`,
      );
      assert.ok(!await exists(out), "nothing written");
    });
  });
}
