/**
 * Training state saved beside the model so that `--resume` continues exactly: AdamW moments
 * (`optimizer.safetensors`) and `state.json` (step, the data sampler's position, run metadata).
 * Both are written atomically; the step is recorded in both, so a mismatched pair is detected.
 *
 * @module
 */
import { join } from "node:path";
import { writeAll } from "@inheritune/data";
import { CheckpointError, readSafetensors, type TensorData, writeSafetensors } from "./safetensors.ts";
import { writeAtomic } from "./_file_io.ts";
import type { ParamMap } from "./params.ts";

/** What a resumed run needs besides the model. */
export interface TrainingState {
  /** Optimizer steps completed. */
  step: number;
  /** AdamW moments, `m.<param>` and `v.<param>`. */
  moments: ParamMap;
  /** The batch sampler's exact position. */
  batches: unknown;
  /** Anything else worth keeping (command line, parameter count). */
  meta?: Record<string, unknown>;
}

/** File names of the training state inside a run folder. */
export const STATE_FILE = "state.json";
/** The optimizer moments file inside a run folder. */
export const OPTIMIZER_FILE = "optimizer.safetensors";

/** Writes the training state into `dir` (atomically, file by file). */
export async function saveTrainingState(dir: string, state: TrainingState): Promise<void> {
  const tensors = new Map<string, TensorData>();
  for (const [name, data] of state.moments) tensors.set(name, { shape: [data.length], data });
  await writeSafetensors(join(dir, OPTIMIZER_FILE), tensors, { metadata: { step: String(state.step) } });
  const json = JSON.stringify({ step: state.step, batches: state.batches, meta: state.meta ?? {} }, null, 2);
  await writeAtomic(join(dir, STATE_FILE), (f) => writeAll(f, new TextEncoder().encode(json + "\n")));
}

/**
 * Reads the training state of `dir`.
 *
 * @throws {CheckpointError} when a file is missing or unreadable, or the two files disagree.
 * `batches` is returned as read, for the batch source to check.
 */
export async function loadTrainingState(dir: string): Promise<TrainingState> {
  const path = join(dir, STATE_FILE);
  let parsed: { step?: unknown; batches?: unknown; meta?: Record<string, unknown> };
  try {
    parsed = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new CheckpointError(`${path}: cannot resume (${(e as Error).message.split("\n")[0]})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new CheckpointError(`${path}: cannot resume (not a JSON object)`);
  }
  if (!Number.isSafeInteger(parsed.step) || (parsed.step as number) < 0) {
    throw new CheckpointError(`${path}: no step recorded`);
  }
  const { tensors, metadata } = await readSafetensors(join(dir, OPTIMIZER_FILE));
  if (metadata.step !== String(parsed.step)) {
    throw new CheckpointError(
      `${dir}: ${OPTIMIZER_FILE} is from step ${metadata.step}, ${STATE_FILE} from ${parsed.step}`,
    );
  }
  const moments: ParamMap = new Map();
  for (const [name, t] of tensors) moments.set(name, t.data);
  return { step: parsed.step as number, moments, batches: parsed.batches, meta: parsed.meta };
}
