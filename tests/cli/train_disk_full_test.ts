/**
 * A disk that fills during a save: `deno task train` on a small tmpfs says which file it could not
 * write in one line and exits 2; the checkpoint before is intact, and once there is room again
 * `--resume` ends exactly where a run on a roomy disk ends. Needs `mount -t tmpfs` (root on Linux);
 * elsewhere the test is skipped with a note.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { latestRunCheckpoint } from "@inheritune/core";
import { writeShard } from "@inheritune/data";
import { runCli, withTempDir } from "../_util.ts";

const TEXT = "The quick brown fox jumps over the lazy dog. A stitch in time saves nine. ".repeat(40);

async function run(command: string, args: string[]): Promise<{ ok: boolean; text: string }> {
  const r = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output().catch((
    e,
  ) => ({
    success: false,
    stdout: new Uint8Array(),
    stderr: new TextEncoder().encode(String(e)),
  }));
  return { ok: r.success, text: new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr) };
}

/** Why a tmpfs cannot be mounted here, or undefined when it can. */
async function cannotMount(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return `not Linux (${Deno.build.os})`;
  const probe = await Deno.makeTempDir({ prefix: "inheritune_tmpfs_probe_" });
  try {
    const mounted = await run("mount", ["-t", "tmpfs", "-o", "size=16k", "tmpfs", probe]);
    if (!mounted.ok) return `mount -t tmpfs failed: ${mounted.text.trim().split("\n")[0]}`;
    await run("umount", [probe]);
    return undefined;
  } finally {
    await Deno.remove(probe);
  }
}

const skip = await cannotMount();
if (skip) console.log(`train_disk_full_test: skipped (${skip})`);

Deno.test({
  name:
    "a disk full during a save: one line naming the file, exit 2, the previous checkpoint resumable and exact",
  ignore: skip !== undefined,
  fn: () =>
    withTempDir(async (dir) => {
      const data = join(dir, "data");
      await Deno.mkdir(data);
      const bytes = [...new TextEncoder().encode(TEXT)];
      await writeShard(join(data, "train_000000.bin"), bytes);
      await writeShard(join(data, "val_000000.bin"), bytes.slice(0, 400));
      // deno-fmt-ignore
      const flags = (out: string) => [
        "train", "--data", data, "--out", out, "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
        "--ctx", "16", "--batch", "2", "--steps", "12", "--log-every", "1", "--save-every", "4",
        "--keep", "1",
      ];
      const roomy = join(dir, "roomy");
      const reference = await runCli(flags(roomy));
      assert.equal(reference.code, 0, reference.stderr);
      // Room for one checkpoint and a half: the second save runs out of space, as its files are
      // written before the first checkpoint is removed.
      const { checkpoint } = await latestRunCheckpoint(roomy);
      let size = 0;
      for await (const e of Deno.readDir(checkpoint!.dir)) {
        size += (await Deno.stat(join(checkpoint!.dir, e.name))).size;
      }
      const disk = join(dir, "disk");
      await Deno.mkdir(disk);
      const mounted = await run("mount", [
        "-t",
        "tmpfs",
        "-o",
        `size=${Math.ceil(size * 1.5 / 1024)}k`,
        "tmpfs",
        disk,
      ]);
      assert.ok(mounted.ok, mounted.text);
      try {
        const out = join(disk, "run");
        const full = await runCli(flags(out));
        assert.equal(full.code, 2, full.stdout + full.stderr);
        const lines = full.stderr.trim().split("\n");
        assert.equal(lines.length, 1, full.stderr);
        assert.match(lines[0], /^inheritune train: \S+: cannot write \(No space left on device/);
        console.log(`  ${lines[0]}`);
        const named = lines[0].split(": ")[1];
        assert.ok(named.startsWith(out), `names a file of the run: ${named}`);
        assert.doesNotMatch(named, /\.tmp/, "names the file, not a temporary name that is gone");
        const before = await latestRunCheckpoint(out);
        assert.equal(before.checkpoint?.step, 4, "the first checkpoint is intact");
        assert.deepEqual(before.notes, [], "the failed save left nothing behind");

        const grown = await run("mount", ["-o", "remount,size=4m", disk]);
        assert.ok(grown.ok, grown.text);
        const resumed = await runCli([...flags(out), "--resume"]);
        assert.equal(resumed.code, 0, resumed.stderr);
        assert.deepEqual(
          await Deno.readFile(join(out, "model.safetensors")),
          await Deno.readFile(join(roomy, "model.safetensors")),
          "the resumed run ends with the weights of the run that had room",
        );
      } finally {
        await run("umount", [disk]);
      }
    }),
});
