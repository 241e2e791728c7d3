/** Every command's --help, the bare command line's list, the README's command table, a quiet stderr. */
import assert from "node:assert/strict";
import { COMMANDS } from "../../cli.ts";
import { runCli } from "../_util.ts";

/** The command table's names: a command added there is tested here without an edit. */
const NAMES = Object.keys(COMMANDS);

/** Each command module's spec, as its --help prints it. */
async function specs(): Promise<{ name: string; usage: string }[]> {
  return await Promise.all(Object.values(COMMANDS).map(async (load) => (await load()).COMMAND));
}

Deno.test("each command's spec carries its table name and a `deno task` of that name runs it", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url))).tasks;
  assert.ok(NAMES.length > 0);
  for (const [i, spec] of (await specs()).entries()) {
    assert.equal(spec.name, NAMES[i]);
    assert.match(tasks[spec.name] ?? "", new RegExp(`^deno run .* cli\\.ts ${spec.name}$`), spec.name);
  }
});

Deno.test("every command answers --help and -h with its usage, flags with defaults, and an example", async () => {
  for (const name of NAMES) {
    for (const flag of ["--help", "-h"]) {
      const r = await runCli([name, flag]);
      assert.equal(r.code, 0, `${name} ${flag}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: deno task ${name} `), name);
      assert.match(r.stdout, /^ {2}--help, -h +this text$/m, name);
      assert.match(r.stdout, /^Examples?:\n {2}deno task /m, name);
      assert.equal(r.stderr, "", name);
    }
  }
  const train = await runCli(["train", "--help"]);
  assert.match(train.stdout, /--lr X +peak learning rate \(default 0\.0006\)/);
  const experiment = await runCli(["train", "--experiment", "--help"]);
  assert.equal(experiment.code, 0, experiment.stderr);
  assert.match(experiment.stdout, /^Usage: deno task train --experiment /);
  assert.match(experiment.stdout, /^stories +stories260K/m);
});

Deno.test("the bare command line, `help` and `--help` list every command with one line each", async () => {
  for (const args of [[], ["help"], ["--help"]]) {
    const r = await runCli(args);
    assert.equal(r.code, 0, r.stderr);
    for (const name of NAMES) {
      assert.match(r.stdout, new RegExp(`^  ${name} +\\S`, "m"), `${name} in ${args}`);
    }
  }
  const unknown = await runCli(["trian"]);
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stderr, `inheritune: unknown command "trian"; commands: ${NAMES.join(", ")}\n`);
});

Deno.test("the README's command table shows each command's usage as its --help does", async () => {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  for (const { name, usage } of await specs()) {
    assert.ok(readme.includes(`deno task ${name} ${usage}`), `README lacks: deno task ${name} ${usage}`);
  }
});

Deno.test("without XDG_RUNTIME_DIR a GPU command's stderr holds only the project's own lines", async () => {
  const r = await runCli(
    ["generate", "--model", "models/stories260K/model.gguf", "--max-new-tokens", "3", "--temperature", "0"],
    { unset: ["XDG_RUNTIME_DIR"] },
  );
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^3 tokens in [\d.]+ s \([\d.]+ tokens\/s, /);
});
