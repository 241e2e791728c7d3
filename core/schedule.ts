/**
 * Learning-rate schedule: linear warm-up, then cosine decay to a floor.
 *
 * @module
 */

/** Shape of the schedule. */
export interface Schedule {
  /** Peak learning rate. */
  lr: number;
  /** Steps of linear warm-up from lr/warmup to lr. */
  warmup: number;
  /** Total steps; the cosine reaches the floor at the last one. */
  steps: number;
  /** Floor as a fraction of the peak (nanoGPT uses 0.1). */
  minLrFraction: number;
}

/** Learning rate at 0-based `step`. */
export function learningRate(step: number, s: Schedule): number {
  if (step < s.warmup) return (s.lr * (step + 1)) / s.warmup;
  const min = s.lr * s.minLrFraction;
  const span = Math.max(1, s.steps - 1 - s.warmup);
  const ratio = Math.min(1, (step - s.warmup) / span);
  return min + 0.5 * (1 + Math.cos(Math.PI * ratio)) * (s.lr - min);
}
