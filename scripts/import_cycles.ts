/**
 * Finds import cycles among the workspace's TypeScript modules, `import type` included: a type-only
 * cycle still means a module owns what should be a leaf. Follows static `import`/`export … from`
 * and `import("…")` with a literal specifier; resolves relative paths and the workspace's member
 * names (`@inheritune/core`, `@inheritune/data/errors`) through each member's `deno.json` exports.
 * Other specifiers (npm:, node:, import-map names) are outside the workspace and ignored.
 *
 *   deno run --allow-read scripts/import_cycles.ts [ROOT]
 *
 * Prints one line per cycle (a strongly connected component, shown as one of its shortest loops)
 * and exits 1 if there is any.
 *
 * @module
 */
import { dirname, join, relative, resolve } from "node:path";

/** One group of modules that import each other, directly or through the others. */
export interface ImportCycle {
  /** Every module of the group, relative to the root, sorted. */
  modules: string[];
  /** One shortest loop through the group, first module repeated at the end (`a → b → a`). */
  loop: string[];
}

/** Root-relative paths the scan skips: the root's `deno.json` `exclude`, hidden folders, node_modules. */
async function excludedPaths(root: string): Promise<Set<string>> {
  const config = JSON.parse(await Deno.readTextFile(join(root, "deno.json")));
  return new Set<string>(
    [...(config.exclude ?? []), "node_modules"].map((p: string) => p.replace(/\/$/, "")),
  );
}

async function listModules(root: string): Promise<string[]> {
  const skip = await excludedPaths(root);
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.name.startsWith(".") || skip.has(relative(root, path))) continue;
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile && entry.name.endsWith(".ts")) out.push(path);
    }
  };
  await walk(root);
  return out.sort();
}

/** Member name (`@inheritune/core`) and subpath (`.`, `./errors`) → absolute file. */
async function memberExports(root: string): Promise<Map<string, string>> {
  const config = JSON.parse(await Deno.readTextFile(join(root, "deno.json")));
  const out = new Map<string, string>();
  for (const member of config.workspace ?? []) {
    const dir = resolve(root, member);
    const manifest = JSON.parse(await Deno.readTextFile(join(dir, "deno.json")));
    if (!manifest.name) continue;
    const exports = typeof manifest.exports === "string" ? { ".": manifest.exports } : manifest.exports ?? {};
    for (const [sub, file] of Object.entries(exports as Record<string, string>)) {
      out.set(
        sub === "." ? manifest.name : `${manifest.name}/${sub.replace(/^\.\//, "")}`,
        resolve(dir, file),
      );
    }
  }
  return out;
}

/** Characters after which a `/` starts a regular expression rather than a division. */
const BEFORE_REGEX = new Set([
  "",
  "(",
  ",",
  "=",
  ":",
  "[",
  "!",
  "&",
  "|",
  "?",
  "{",
  "}",
  ";",
  "+",
  "-",
  "*",
  "%",
  "<",
  ">",
  "~",
  "^",
]);

/**
 * The source with comments removed and every string literal replaced by `"#N"`, N indexing the
 * returned literals; template literals become empty. So an import written inside a comment (a JSDoc
 * example) or inside a string is not taken for one.
 */
function maskSource(src: string): { code: string; literals: string[] } {
  const literals: string[] = [];
  let code = "";
  let i = 0;
  const lastSignificant = (): string => {
    const t = code.trimEnd();
    const word = /(?:return|typeof|case|do|else|in|of|void|yield|await)$/.exec(t);
    return word && !/[\w$]/.test(t[t.length - word[0].length - 1] ?? "") ? "" : t.slice(-1);
  };
  while (i < src.length) {
    const c = src[i];
    const next = src[i + 1];
    if (c === "/" && next === "/") {
      while (i < src.length && src[i] !== "\n") i++;
    } else if (c === "/" && next === "*") {
      const end = src.indexOf("*/", i + 2);
      i = end < 0 ? src.length : end + 2;
      code += " ";
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      let text = "";
      while (j < src.length && src[j] !== c && src[j] !== "\n") {
        if (src[j] === "\\") j++;
        text += src[j++];
      }
      code += `"#${literals.push(text) - 1}"`;
      i = j + 1;
    } else if (c === "`") {
      i = skipTemplate(src, i + 1);
      code += "``";
    } else if (c === "/" && BEFORE_REGEX.has(lastSignificant())) {
      let j = i + 1;
      let inClass = false;
      while (j < src.length && src[j] !== "\n" && (inClass || src[j] !== "/")) {
        if (src[j] === "\\") j++;
        else if (src[j] === "[") inClass = true;
        else if (src[j] === "]") inClass = false;
        j++;
      }
      code += "/r/";
      i = j + 1;
    } else {
      code += c;
      i++;
    }
  }
  return { code, literals };
}

/** Index just past the template literal whose body starts at `i`, nested `${…}` and templates included. */
function skipTemplate(src: string, i: number): number {
  while (i < src.length && src[i] !== "`") {
    if (src[i] === "\\") i += 2;
    else if (src[i] === "$" && src[i + 1] === "{") {
      let depth = 1;
      i += 2;
      while (i < src.length && depth > 0) {
        const c = src[i];
        if (c === "`") i = skipTemplate(src, i + 1);
        else if (c === '"' || c === "'") {
          i++;
          while (i < src.length && src[i] !== c) i += src[i] === "\\" ? 2 : 1;
          i++;
        } else {
          if (c === "{") depth++;
          else if (c === "}") depth--;
          i++;
        }
      }
    } else i++;
  }
  return i + 1;
}

const IMPORT_PATTERNS = [
  /\b(?:import|export)\s+(?:type\s+)?[\w\s{},*$]*?\bfrom\s*"#(\d+)"/g,
  /\bimport\s*"#(\d+)"/g,
  /\bimport\s*\(\s*"#(\d+)"\s*\)/g,
];

/** The specifiers a module's source imports or re-exports, type-only ones included. */
export function importSpecifiers(src: string): string[] {
  const { code, literals } = maskSource(src);
  const out: string[] = [];
  for (const pattern of IMPORT_PATTERNS) {
    for (const m of code.matchAll(pattern)) out.push(literals[Number(m[1])]);
  }
  return out;
}

/** Strongly connected components of `graph` with more than one node or a self-loop (Tarjan). */
function cyclicComponents(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || graph.get(v)?.includes(v)) out.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

/** A shortest loop from `start` back to itself inside `members` (breadth first). */
function shortestLoop(graph: Map<string, string[]>, start: string, members: Set<string>): string[] {
  const parent = new Map<string, string>();
  const queue = [start];
  for (let k = 0; k < queue.length; k++) {
    const v = queue[k];
    for (const w of graph.get(v) ?? []) {
      if (!members.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let u = v; u !== start; u = parent.get(u)!) path.push(u);
        return [start, ...path.slice(1).reverse(), start];
      }
      if (!parent.has(w)) {
        parent.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start];
}

/** The import cycles among the `.ts` modules under `root`, a Deno workspace root. */
export async function findImportCycles(root: string): Promise<ImportCycle[]> {
  root = resolve(root);
  const members = await memberExports(root);
  const graph = new Map<string, string[]>();
  for (const file of await listModules(root)) {
    const targets = new Set<string>();
    for (const spec of importSpecifiers(await Deno.readTextFile(file))) {
      const target = spec.startsWith(".") ? resolve(dirname(file), spec) : members.get(spec);
      if (target?.endsWith(".ts")) targets.add(relative(root, target));
    }
    graph.set(relative(root, file), [...targets].sort());
  }
  return cyclicComponents(graph).map((modules) => ({
    modules,
    loop: shortestLoop(graph, modules[0], new Set(modules)),
  }));
}

if (import.meta.main) {
  const cycles = await findImportCycles(Deno.args[0] ?? ".");
  for (const c of cycles) {
    console.log(`${c.loop.join(" → ")}  (${c.modules.length} modules: ${c.modules.join(", ")})`);
  }
  console.log(`${cycles.length} import cycle${cycles.length === 1 ? "" : "s"}`);
  if (cycles.length > 0) Deno.exit(1);
}
