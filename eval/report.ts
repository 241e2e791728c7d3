/**
 * Comparison tables of model reports: aligned plain text for the terminal, Markdown for written
 * reports. One row per model: name, parameters, validation loss, perplexity, bits per byte, then
 * each task's accuracy and length-normalised accuracy (final-word perplexity, TruthfulQA's MC2)
 * with standard errors ("-" where a task reports none).
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
  // Each task's second column: final-word perplexity, TruthfulQA's MC2, else acc_norm.
  const second = (name: string): "ppl" | "mc2" | "acc_norm" => {
    const results = reports.flatMap((r) => r.tasks.filter((t) => t.name === name));
    if (results.some((t) => t.kind === "final_word")) return "ppl";
    return results.some((t) => t.mc2 !== undefined) ? "mc2" : "acc_norm";
  };
  for (const name of tasks) header.push(`${name} acc`, `${name} ${second(name)}`);
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
      const column = second(name);
      row.push(
        column === "ppl"
          ? num(t?.perplexity, 2)
          : column === "mc2"
          ? withErr(t?.mc2, t?.mc2_stderr)
          : withErr(t?.acc_norm, t?.acc_norm_stderr),
      );
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
