/**
 * Comparison tables of model reports: aligned plain text for the terminal, Markdown for written
 * reports. One row per model: name, parameters, validation loss, perplexity, bits per byte, then
 * each task's accuracy and length-normalised accuracy (or final-word perplexity) with standard
 * errors.
 *
 * @module
 */
import { markdownTable } from "@inheritune/core";
import type { ModelReport } from "./evaluate.ts";

/** A table: header and rows of cells. */
export interface Table {
  /** Column titles. */
  header: string[];
  /** One row of cells per model. */
  rows: string[][];
}

/** `1234567` → `1.23M`. */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

function num(v: number | undefined, digits: number): string {
  return v === undefined ? "-" : v.toFixed(digits);
}

function withErr(v: number | undefined, err: number | undefined): string {
  if (v === undefined) return "-";
  return Number.isFinite(err) ? `${v.toFixed(3)}±${err!.toFixed(3)}` : v.toFixed(3);
}

/** The comparison table of `reports`; tasks are columns in order of first appearance. */
export function reportTable(reports: readonly ModelReport[]): Table {
  const tasks: string[] = [];
  for (const r of reports) for (const t of r.tasks) if (!tasks.includes(t.name)) tasks.push(t.name);
  const header = ["model", "params", "val loss", "ppl", "bpb"];
  for (const name of tasks) {
    const finalWord = reports.some((r) => r.tasks.some((t) => t.name === name && t.kind === "final_word"));
    header.push(`${name} acc`, finalWord ? `${name} ppl` : `${name} acc_norm`);
  }
  const rows = reports.map((r) => {
    const row = [
      r.model,
      formatCount(r.params),
      num(r.text?.loss, 4),
      num(r.text?.perplexity, 2),
      num(r.text?.bitsPerByte, 4),
    ];
    for (const name of tasks) {
      const t = r.tasks.find((t) => t.name === name);
      row.push(withErr(t?.acc, t?.acc_stderr));
      row.push(t?.kind === "final_word" ? num(t.perplexity, 2) : withErr(t?.acc_norm, t?.acc_norm_stderr));
    }
    return row;
  });
  return { header, rows };
}

/** `table` as aligned plain text, numbers right-aligned. */
export function formatText(table: Table): string {
  const all = [table.header, ...table.rows];
  const widths = table.header.map((_, c) => Math.max(...all.map((r) => r[c].length)));
  const line = (r: string[]): string =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  ").trimEnd();
  return [line(table.header), widths.map((w) => "-".repeat(w)).join("  "), ...table.rows.map(line)].join(
    "\n",
  );
}

/** `table` as a Markdown table ({@linkcode markdownTable}), numbers right-aligned, no final newline. */
export function formatMarkdown(table: Table): string {
  return markdownTable(table.header, table.rows, { alignRight: true }).trimEnd();
}
