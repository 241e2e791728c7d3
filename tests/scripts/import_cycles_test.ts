/**
 * scripts/import_cycles.ts: the workspace has no import cycle (type-only imports count), and the
 * checker itself sees the kinds of import a cycle can hide in.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { findImportCycles, importSpecifiers } from "../../scripts/import_cycles.ts";
import { withTempDir } from "../_util.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("the workspace's modules import each other without a cycle", async () => {
  const cycles = await findImportCycles(ROOT);
  assert.deepEqual(cycles.map((c) => `${c.loop.join(" → ")} (among ${c.modules.join(", ")})`), []);
});

Deno.test("importSpecifiers reads type-only imports, re-exports and dynamic imports, not comments or strings", () => {
  const src = [
    '/** ```ts\nimport { x } from "./in_jsdoc.ts";\n``` */',
    '// import "./in_line_comment.ts";',
    "const s = 'import { y } from \"./in_string.ts\"';",
    'const t = `export * from "./in_template.ts"`;',
    'const re = /"/;',
    'import type { A } from "./a.ts";',
    'import { type B, c } from "@inheritune/b";',
    'export * from "./d.ts";',
    'export type { E } from "./e.ts";',
    'import "./f.ts";',
    'const g = await import("./g.ts");',
    'import text from "./h.html" with { type: "text" };',
  ].join("\n");
  assert.deepEqual(importSpecifiers(src).sort(), [
    "./a.ts",
    "./d.ts",
    "./e.ts",
    "./f.ts",
    "./g.ts",
    "./h.html",
    "@inheritune/b",
  ]);
});

Deno.test("findImportCycles finds a type-only cycle through a member's name and mod.ts", async () => {
  await withTempDir(async (dir) => {
    const write = (path: string, text: string) => Deno.writeTextFile(join(dir, path), text);
    await Deno.mkdir(join(dir, "m"));
    await write("deno.json", JSON.stringify({ workspace: ["./m"] }));
    await write(
      "m/deno.json",
      JSON.stringify({ name: "@w/m", exports: { ".": "./mod.ts", "./b": "./b.ts" } }),
    );
    await write("m/mod.ts", 'export * from "./a.ts";\n');
    await write("m/a.ts", 'import type { B } from "@w/m/b";\nexport type A = B;\n');
    await write("m/b.ts", 'import type { A } from "@w/m";\nexport type B = { a?: A };\n');
    await write("m/leaf.ts", 'import type { A } from "./a.ts";\nexport type L = A;\n');
    const cycles = await findImportCycles(dir);
    assert.equal(cycles.length, 1);
    assert.deepEqual(cycles[0].modules, ["m/a.ts", "m/b.ts", "m/mod.ts"]);
    assert.deepEqual(cycles[0].loop, ["m/a.ts", "m/b.ts", "m/mod.ts", "m/a.ts"]);
  });
});
