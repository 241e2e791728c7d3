/** A made-up logged step for the server tests. */
import type { Metrics } from "@inheritune/server";

/** A logged step of a run training 32 tokens per step at 100 steps a second. */
export function step(n: number, extra: Partial<Metrics> = {}): Metrics {
  return {
    step: n,
    loss: 5 - n / 100,
    lr: 6e-4,
    tokens_per_s: 3200,
    tokens: 32 * n,
    elapsed_s: n / 100,
    ...extra,
  };
}
