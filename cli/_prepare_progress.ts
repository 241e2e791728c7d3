/** The progress line of `prepare` on stderr (MB/s and ETA): a redrawn bar on a terminal, a line every 10 s otherwise. */
import type { PrepareProgress } from "@inheritune/data";
import { formatDuration } from "./_progress.ts";

const WIDTH = 30;
const MB = 1e6;

/** Returns an `onProgress` callback and a `done` to end the bar's line. */
export function progressBar(): { update: (p: PrepareProgress) => void; done: () => void } {
  const tty = Deno.stderr.isTerminal();
  const encoder = new TextEncoder();
  let last = tty ? -Infinity : performance.now();
  let drawn = false;
  const update = (p: PrepareProgress): void => {
    const now = performance.now();
    const finished = p.bytesRead >= p.totalBytes;
    if (now - last < (tty ? 100 : 10_000) && !finished) return;
    last = now;
    const frac = p.totalBytes > 0 ? Math.min(1, p.bytesRead / p.totalBytes) : 1;
    const fill = Math.round(frac * WIDTH);
    const rate = p.seconds > 0 ? p.bytesRead / MB / p.seconds : 0;
    const eta = rate > 0 ? `ETA ${formatDuration((p.totalBytes - p.bytesRead) / MB / rate)}  ` : "";
    const line =
      `[${"#".repeat(fill)}${".".repeat(WIDTH - fill)}] ${(100 * frac).toFixed(1).padStart(5)}%  ` +
      `${(p.bytesRead / MB).toFixed(1)}/${(p.totalBytes / MB).toFixed(1)} MB  ${
        rate.toFixed(1)
      } MB/s  ${eta}` +
      `${p.tokens.toLocaleString("en-US")} tokens`;
    if (tty) {
      Deno.stderr.writeSync(encoder.encode(`\r${line}\x1b[K`));
      drawn = true;
    } else if (!finished) {
      console.error(line);
    }
  };
  const done = (): void => {
    if (drawn) Deno.stderr.writeSync(encoder.encode("\n"));
  };
  return { update, done };
}
