/**
 * Reports of an Inheritune experiment: an SVG of validation-loss curves and a Markdown table.
 *
 * @module
 */

/** One curve: (step, loss) points. */
export interface Curve {
  /** Legend label. */
  name: string;
  /** Points in step order. */
  points: [number, number][];
}

const COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"];

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** A self-contained SVG line chart of `curves`, with an optional dashed reference line. */
export function lossCurvesSvg(curves: Curve[], options: { reference?: number; title?: string } = {}): string {
  const W = 640, H = 400, L = 60, R = 150, TOP = 40, BOT = 50;
  const all = curves.flatMap((c) => c.points);
  const ys = all.map((p) => p[1]).concat(options.reference ?? []);
  const xMax = Math.max(1, ...all.map((p) => p[0]));
  let yMin = Math.min(...ys), yMax = Math.max(...ys);
  if (!(yMax > yMin)) [yMin, yMax] = [yMin - 0.5, yMax + 0.5];
  const pad = (yMax - yMin) * 0.05;
  yMin -= pad;
  yMax += pad;
  const x = (v: number) => L + (v / xMax) * (W - L - R);
  const y = (v: number) => TOP + ((yMax - v) / (yMax - yMin)) * (H - TOP - BOT);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="22" font-size="14">${esc(options.title ?? "validation loss")}</text>`,
    `<line x1="${L}" y1="${H - BOT}" x2="${W - R}" y2="${H - BOT}" stroke="black"/>`,
    `<line x1="${L}" y1="${TOP}" x2="${L}" y2="${H - BOT}" stroke="black"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">step</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = yMin + ((yMax - yMin) * i) / 4;
    out.push(
      `<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(3)}</text>`,
      `<line x1="${L}" y1="${y(v)}" x2="${W - R}" y2="${y(v)}" stroke="#ddd"/>`,
    );
    const s = Math.round((xMax * i) / 4);
    out.push(`<text x="${x(s)}" y="${H - BOT + 16}" text-anchor="middle">${s}</text>`);
  }
  let legend = TOP;
  if (options.reference !== undefined) {
    out.push(
      `<line x1="${L}" y1="${y(options.reference)}" x2="${W - R}" y2="${
        y(options.reference)
      }" stroke="#555" stroke-dasharray="6 4"/>`,
      `<text x="${W - R + 10}" y="${legend + 4}" fill="#555">reference</text>`,
    );
    legend += 18;
  }
  curves.forEach((c, i) => {
    const color = COLORS[i % COLORS.length];
    const d = c.points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const p of c.points) {
      out.push(`<circle cx="${x(p[0]).toFixed(1)}" cy="${y(p[1]).toFixed(1)}" r="2.5" fill="${color}"/>`);
    }
    out.push(`<text x="${W - R + 10}" y="${legend + 4}" fill="${color}">${esc(c.name)}</text>`);
    legend += 18;
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/**
 * A Markdown table: `header` then one row per entry of `rows`, each line ending in a newline; `|`
 * inside a cell is escaped. `options.alignRight` right-aligns every column after the first (the
 * numbers of a comparison table).
 */
export function markdownTable(
  header: string[],
  rows: (string | number)[][],
  options: { alignRight?: boolean } = {},
): string {
  const line = (cells: (string | number)[]): string =>
    `| ${cells.map((c) => String(c).replaceAll("|", "\\|")).join(" | ")} |`;
  const rule = header.map((_, c) => (c > 0 && options.alignRight ? "---:" : "---"));
  return [line(header), line(rule), ...rows.map(line)].join("\n") + "\n";
}
