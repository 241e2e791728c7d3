/**
 * Documents of structured files: one per JSON Lines line, JSON array element or Parquet row, its
 * text in a named field (`text`, or a dotted path into nested objects such as `meta.body`).
 * JSON is split as it streams in, so memory holds one record at a time, not the file; Parquet is
 * read one row group at a time with `hyparquet`.
 *
 * @module
 */
import { parquetMetadataAsync, parquetReadObjects, parquetSchema } from "hyparquet";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import { decompress as zstdDecompress } from "fzstd";
import { DataError } from "./errors.ts";

/** One record: its text, or why it has none (a bad line that `skipBadLines` may skip). */
export interface TextRecord {
  /** Line (JSON, from 1) or row (Parquet, from 1) where the record starts. */
  readonly at: number;
  /** The text of its field. */
  readonly text?: string;
  /** Why it has no text: not valid JSON, no such field, not a string. */
  readonly problem?: string;
}

/** The text at dotted `path` of a parsed record, or the reason there is none. */
export function fieldText(record: unknown, path: readonly string[]): { text?: string; problem?: string } {
  let value = record;
  for (let i = 0; i < path.length; i++) {
    if (
      typeof value !== "object" || value === null || Array.isArray(value) || !Object.hasOwn(value, path[i])
    ) {
      const where = i === 0 ? "" : ` in "${path.slice(0, i).join(".")}"`;
      return { problem: `no field "${path[i]}"${where}` };
    }
    value = (value as Record<string, unknown>)[path[i]];
  }
  if (typeof value === "string") return { text: value };
  return {
    problem: `field "${path.join(".")}" is ${value === null ? "null" : `a ${typeof value}`}, not a string`,
  };
}

function parseRecord(json: string, at: number, field: readonly string[]): TextRecord {
  let record: unknown;
  try {
    record = JSON.parse(json);
  } catch (e) {
    return { at, problem: `not valid JSON (${(e as Error).message.split("\n")[0]})` };
  }
  return { at, ...fieldText(record, field) };
}

const STRING_END = /["\\]/g;

/**
 * Splits JSON text pushed in pieces into records: one per line (JSON Lines), or, when the first
 * character that is not whitespace is `[` and `array` allows it, one per element of that array.
 * Blank lines are skipped.
 */
export class JsonRecords {
  readonly #name: string;
  readonly #field: readonly string[];
  /** Undecided (null) until the first non-whitespace character of a `.json` file. */
  #array: boolean | null;
  #carry = "";
  /** Line breaks before `#carry` (JSON Lines) or before the scan position (arrays). */
  #line = 0;
  // Array state: nesting depth, whether inside a string, where the current element starts.
  #depth = 0;
  #inString = false;
  #escape = false;
  #start = -1;
  #startLine = 0;
  #closed = false;
  #scanned = 0;

  /** Records of the file `name` (for errors), text at `field` (dotted); `array`: false for JSON Lines only. */
  constructor(name: string, field: string, options: { array: boolean }) {
    this.#name = name;
    this.#field = field.split(".");
    this.#array = options.array ? null : false;
  }

  /** The records completed by `text`. */
  push(text: string): TextRecord[] {
    this.#carry += text;
    if (this.#array === null) {
      const first = this.#carry.search(/\S/);
      if (first < 0) return [];
      this.#array = this.#carry[first] === "[";
    }
    return this.#array ? this.#elements(false) : this.#lines(false);
  }

  /**
   * The records left at the end of the file.
   *
   * @throws {DataError} naming the file and line when a JSON array is not closed or is followed by more.
   */
  finish(): TextRecord[] {
    return this.#array ? this.#elements(true) : this.#lines(true);
  }

  #lines(last: boolean): TextRecord[] {
    const out: TextRecord[] = [];
    const s = this.#carry;
    let from = 0;
    for (;;) {
      let end = s.indexOf("\n", from);
      if (end < 0) {
        if (!last || from >= s.length) break;
        end = s.length;
      }
      this.#line++;
      const line = s.slice(from, end);
      if (line.trim() !== "") out.push(parseRecord(line, this.#line, this.#field));
      from = end + 1;
    }
    this.#carry = from >= s.length ? "" : s.slice(from);
    return out;
  }

  #elements(last: boolean): TextRecord[] {
    const out: TextRecord[] = [];
    const s = this.#carry;
    let i = this.#scanned;
    let line = this.#line;
    const fail = (what: string): never => {
      throw new DataError(`${this.#name}:${line + 1}: ${what}`);
    };
    const emit = (end: number): void => {
      out.push(parseRecord(s.slice(this.#start, end), this.#startLine, this.#field));
      this.#start = -1;
    };
    while (i < s.length) {
      if (this.#inString) {
        if (this.#escape) {
          this.#escape = false;
          i++;
          continue;
        }
        STRING_END.lastIndex = i;
        const m = STRING_END.exec(s);
        if (!m) {
          i = s.length;
          break;
        }
        i = m.index + 1;
        if (m[0] === "\\") this.#escape = true;
        else this.#inString = false;
        continue;
      }
      const c = s[i];
      if (c === "\n") line++;
      if (this.#closed) {
        if (!/\s/.test(c)) fail("more after the end of the JSON array");
        i++;
        continue;
      }
      const opensElement = this.#depth === 1 && this.#start < 0 && !/[\s,\]]/.test(c);
      if (opensElement) {
        this.#start = i;
        this.#startLine = line + 1;
      }
      if (c === '"') this.#inString = true;
      else if (c === "{" || c === "[") this.#depth++;
      else if (c === "}" || c === "]") {
        if (this.#depth === 1 && c === "]") {
          if (this.#start >= 0) emit(i);
          this.#closed = true;
        } else if (this.#depth <= 1) fail(`unexpected "${c}"`);
        this.#depth--;
        if (this.#depth === 1 && this.#start >= 0) emit(i + 1);
      } else if (c === "," && this.#depth === 1) {
        if (this.#start >= 0) emit(i);
      } else if (this.#depth === 0 && !/\s/.test(c)) fail(`expected "[" to start a JSON array, got "${c}"`);
      i++;
    }
    // Keep only the text of the element in progress.
    const keep = this.#start >= 0 ? this.#start : i;
    this.#carry = s.slice(keep);
    this.#scanned = i - keep;
    if (this.#start >= 0) this.#start = 0;
    this.#line = line;
    if (last && !this.#closed) fail('the JSON array is not closed (no final "]")');
    return out;
  }
}

/** Parquet page decompressors beyond hyparquet's built-in snappy (zstd as for `.zst` files). */
const COMPRESSORS = {
  GZIP: (input: Uint8Array): Uint8Array => gunzipSync(input),
  BROTLI: (input: Uint8Array): Uint8Array => brotliDecompressSync(input),
  ZSTD: (input: Uint8Array, outputLength: number): Uint8Array =>
    zstdDecompress(input, new Uint8Array(outputLength)),
};

/**
 * The records of the Parquet file at `path` (named `name` in errors), one row group at a time;
 * `field` is a column, or a dotted path into a struct column.
 *
 * @throws {DataError} naming the file for a file that is not Parquet or has no such column.
 */
export async function* parquetRecords(
  path: string,
  options: { name: string; field: string; onRowGroup?: (fraction: number) => void },
): AsyncGenerator<TextRecord[]> {
  using file = await Deno.open(path);
  const byteLength = (await file.stat()).size;
  const buffer = {
    byteLength,
    async slice(start: number, end = byteLength): Promise<ArrayBuffer> {
      const bytes = new Uint8Array(end - start);
      await file.seek(start, Deno.SeekMode.Start);
      for (let got = 0; got < bytes.length;) {
        const n = await file.read(bytes.subarray(got));
        if (n === null) throw new DataError(`${options.name}: file shrank while reading`);
        got += n;
      }
      return bytes.buffer;
    },
  };
  const fail = (e: unknown): never => {
    throw new DataError(
      `${options.name}: not a readable Parquet file (${(e as Error).message.split("\n")[0]})`,
    );
  };
  const metadata = await parquetMetadataAsync(buffer).catch(fail);
  const path_ = options.field.split(".");
  const columns = parquetSchema(metadata).children.map((c) => c.element.name);
  if (!columns.includes(path_[0])) {
    throw new DataError(`${options.name}: no column "${path_[0]}" (columns: ${columns.join(", ")})`);
  }
  let rowStart = 0;
  const total = Number(metadata.num_rows);
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    const rows = await parquetReadObjects({
      file: buffer,
      metadata,
      columns: [path_[0]],
      rowStart,
      rowEnd,
      rowFormat: "object",
      compressors: COMPRESSORS,
    }).catch(fail);
    yield rows.map((row, i) => ({ at: rowStart + i + 1, ...fieldText(row, path_) }));
    rowStart = rowEnd;
    options.onRowGroup?.(total > 0 ? rowStart / total : 1);
  }
}
