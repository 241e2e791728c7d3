/**
 * The terminal progress line of a training run: step, loss, tokens/s and ETA.
 *
 * @module
 */
import type { StepMetrics } from "@inheritune/core";

/** Formats seconds as `1h02m`, `3m05s` or `12s`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

/** Returns a callback printing one line per logged step of a run of `steps` steps. */
export function progressPrinter(steps: number, label = ""): (m: StepMetrics) => void {
  return (m) => {
    const eta = (m.elapsed_s / Math.max(1, m.step)) * (steps - m.step);
    const val = m.val_loss !== undefined ? ` | val ${m.val_loss.toFixed(4)}` : "";
    console.log(
      `${label}step ${String(m.step).padStart(String(steps).length)}/${steps} | loss ${
        m.loss.toFixed(4)
      }${val} | ` +
        `lr ${m.lr.toExponential(2)} | ${(m.tokens_per_s / 1000).toFixed(1)}k tok/s | ETA ${
          formatDuration(eta)
        }`,
    );
  };
}
