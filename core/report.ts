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

/** Round axis ticks covering [min, max]: a step of 1, 2 or 5 times a power of ten. */
export interface Ticks {
  /** Tick values, ascending; the first ≤ min and the last ≥ max. */
  values: number[];
  /** Decimals that print every tick exactly (0 for steps ≥ 1). */
  decimals: number;
}

/**
 * About `target` (5) round ticks spanning finite `[min, max]` (Heckbert's "nice numbers"): the step is the
 * smallest of 1, 2, 5 × 10^k at least (max − min) / target, and the ends are the multiples of the
 * step just outside the data, so an axis drawn from the first tick to the last holds every value.
 */
export function niceTicks(min: number, max: number, target = 5): Ticks {
  if (!(max > min)) [min, max] = [min - 0.5, max + 0.5];
  const raw = (max - min) / target;
  const power = Math.floor(Math.log10(raw));
  const mantissa = raw / 10 ** power;
  const step = (mantissa <= 1 ? 1 : mantissa <= 2 ? 2 : mantissa <= 5 ? 5 : 10) * 10 ** power;
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  // Multiples of the step as integers, so that 0.1 · 3 prints as 0.3; the 1e-9 keeps a value
  // already on a tick from adding one beyond it.
  const first = Math.floor(min / step + 1e-9);
  const last = Math.ceil(max / step - 1e-9);
  const values = [];
  for (let k = first; k <= last; k++) values.push(Number((k * step).toFixed(decimals)));
  return { values, decimals };
}

/**
 * A self-contained SVG line chart of `curves` on round ticks, with an optional dashed reference
 * line whose value is printed on the y axis (replacing a tick label it would overlap).
 */
export function lossCurvesSvg(curves: Curve[], options: { reference?: number; title?: string } = {}): string {
  const W = 640, H = 400, L = 60, R = 150, TOP = 40, BOT = 50;
  const all = curves.flatMap((c) => c.points);
  // A diverged run's NaN or infinite loss has no place on the axis; its point is left undrawn.
  const ys = all.map((p) => p[1]).concat(options.reference ?? []).filter(Number.isFinite);
  if (ys.length === 0) ys.push(0, 1);
  const yTicks = niceTicks(Math.min(...ys), Math.max(...ys));
  const xTicks = niceTicks(0, Math.max(1, ...all.map((p) => p[0])));
  const [yMin, yMax] = [yTicks.values[0], yTicks.values.at(-1)!];
  const xMax = xTicks.values.at(-1)!;
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
  const ref = options.reference;
  for (const v of yTicks.values) {
    out.push(`<line x1="${L}" y1="${y(v)}" x2="${W - R}" y2="${y(v)}" stroke="#ddd"/>`);
    // A tick label closer than a line of text to the reference's label would print over it.
    if (ref === undefined || Math.abs(y(v) - y(ref)) >= 14) {
      out.push(`<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(yTicks.decimals)}</text>`);
    }
  }
  for (const s of xTicks.values) {
    out.push(`<text x="${x(s)}" y="${H - BOT + 16}" text-anchor="middle">${s}</text>`);
  }
  let legend = TOP;
  if (ref !== undefined) {
    out.push(
      `<line x1="${L}" y1="${y(ref)}" x2="${W - R}" y2="${y(ref)}" stroke="#555" stroke-dasharray="6 4"/>`,
      `<text class="reference-value" x="${L - 6}" y="${
        y(ref) + 4
      }" text-anchor="end" fill="#555" font-weight="bold">${ref.toFixed(yTicks.decimals + 2)}</text>`,
      `<text x="${W - R + 10}" y="${legend + 4}" fill="#555">reference</text>`,
    );
    legend += 18;
  }
  curves.forEach((c, i) => {
    const color = COLORS[i % COLORS.length];
    const points = c.points.filter((p) => Number.isFinite(p[1]));
    const d = points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const p of points) {
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
