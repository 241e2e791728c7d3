/**
 * A run's checkpoints: everything `--resume` needs to continue a run exactly, one folder per saved
 * step under `out/checkpoints/`:
 *
 * ```
 * checkpoints/step-00000120/
 *   config.json, model.safetensors, tokenizer files   the model (a model folder of its own)
 *   optimizer.safetensors                             AdamW moments
 *   state.json                                        step, sampler position, tokens, elapsed_s, meta
 *   metrics.jsonl                                     the run's log up to the step
 *   manifest.json                                     size and SHA-256 of each file above
 * ```
 *
 * A checkpoint is written into a hidden temporary folder, synced, and renamed into place, so all
 * its files appear together or not at all; its manifest, written last, lets a resume verify a
 * folder that was damaged or cut short afterwards (a full disk, a partial copy). A resume takes the
 * newest folder that verifies; a temporary folder left by a killed save is removed, a damaged one
 * set aside, each with a note. The newest model is linked into `out/` too (hard links, so no
 * extra space), which keeps the run folder a model folder that `eval` and `generate` read.
 *
 * @module
 */
import { join } from "node:path";
import { writeAll } from "@inheritune/data";
import { CheckpointError, readSafetensors, type TensorData, writeSafetensors } from "./safetensors.ts";
import { fileDigest, retireFolder, syncFolder, tempName, writeAtomic, writeError } from "./_file_io.ts";
import { CONFIG_FILE, saveModel, TOKENIZER_FILES, WEIGHTS_FILE } from "./checkpoint.ts";
import type { Checkpoint } from "./family.ts";
import type { ParamMap } from "./params.ts";

/** What a resumed run needs besides the model. */
export interface TrainingState {
  /** Optimizer steps completed. */
  step: number;
  /** AdamW moments, `m.<param>` and `v.<param>`. */
  moments: ParamMap;
  /** The batch sampler's exact position. */
  batches: unknown;
  /** Tokens trained on up to `step` (0 in states written before it was kept). */
  tokens?: number;
  /** Seconds of training up to the save, summed over the run's processes. */
  elapsed_s?: number;
  /** Anything else worth keeping (command line, parameter count). */
  meta?: Record<string, unknown>;
}

/** The training state file inside a checkpoint folder. */
export const STATE_FILE = "state.json";
/** The optimizer moments file inside a checkpoint folder. */
export const OPTIMIZER_FILE = "optimizer.safetensors";
/** The run's log, one JSON line per logged step, in a run folder and in each checkpoint. */
export const METRICS_FILE = "metrics.jsonl";
/** The list of a checkpoint's files with their sizes and hashes, written last. */
export const MANIFEST_FILE = "manifest.json";
/** The folder of a run's checkpoints. */
export const CHECKPOINTS_DIR = "checkpoints";

/** A checkpoint's folder name: `step-` and the step, zero-padded so that names sort by step. */
const STEP_FOLDER = /^step-(\d+)$/;

/** The temporary name of a file being written (`_file_io.ts`'s `tempName`). */
const TEMP_FILE = /^\..+\.[0-9a-f]{8}\.tmp$/;

/** Files every checkpoint holds besides the manifest. */
const REQUIRED_FILES = [CONFIG_FILE, WEIGHTS_FILE, OPTIMIZER_FILE, STATE_FILE, METRICS_FILE];

/** Writes the training state (moments and `state.json`) into `dir`, file by file. */
export async function saveTrainingState(dir: string, state: TrainingState): Promise<void> {
  const tensors = new Map<string, TensorData>();
  for (const [name, data] of state.moments) tensors.set(name, { shape: [data.length], data });
  await writeSafetensors(join(dir, OPTIMIZER_FILE), tensors, { metadata: { step: String(state.step) } });
  const json = JSON.stringify(
    {
      step: state.step,
      batches: state.batches,
      tokens: state.tokens ?? 0,
      elapsed_s: state.elapsed_s ?? 0,
      meta: state.meta ?? {},
    },
    null,
    2,
  );
  await writeAtomic(join(dir, STATE_FILE), (f) => writeAll(f, new TextEncoder().encode(json + "\n")));
}

/**
 * Reads the training state of the checkpoint folder `dir`.
 *
 * @throws {CheckpointError} when a file is missing or unreadable, or the two files disagree.
 * `batches` is returned as read, for the batch source to check.
 */
export async function loadTrainingState(dir: string): Promise<TrainingState> {
  const path = join(dir, STATE_FILE);
  let parsed: {
    step?: unknown;
    batches?: unknown;
    tokens?: unknown;
    elapsed_s?: unknown;
    meta?: Record<string, unknown>;
  };
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
  const count = (v: unknown): number => typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0;
  return {
    step: parsed.step as number,
    moments,
    batches: parsed.batches,
    tokens: count(parsed.tokens),
    elapsed_s: count(parsed.elapsed_s),
    meta: parsed.meta,
  };
}

// ---------------------------------------------------------------------------------------------
// Checkpoint folders

/** Everything a checkpoint holds. */
export interface RunCheckpointData {
  /** The model: configuration, parameters, tokenizer files. */
  model: Checkpoint;
  /** Optimizer moments and positions at the step. */
  state: TrainingState;
  /** `metrics.jsonl` as it stands at the step. */
  metrics: Uint8Array;
}

/** A complete, verified checkpoint of a run. */
export interface RunCheckpoint {
  /** Its folder, `out/checkpoints/step-NNNNNNNN`. */
  dir: string;
  /** The step it was saved at. */
  step: number;
}

/** Options of {@linkcode saveRunCheckpoint}. */
export interface SaveRunCheckpointOptions {
  /** Checkpoints to keep, this one included; older ones are removed (all when omitted). */
  keep?: number;
}

/** The checkpoint folder of `step` in the run folder `out`. */
export function checkpointFolder(out: string, step: number): string {
  return join(out, CHECKPOINTS_DIR, `step-${String(step).padStart(8, "0")}`);
}

/**
 * Saves a checkpoint of the run in `out` atomically (see the module notes), then removes the
 * oldest beyond `keep` and links its model files into `out`. Returns its folder.
 *
 * @throws {CheckpointError} naming the file when a write fails (a full disk): the temporary
 * folder is removed and the earlier checkpoints are untouched.
 */
export async function saveRunCheckpoint(
  out: string,
  data: RunCheckpointData,
  options: SaveRunCheckpointOptions = {},
): Promise<string> {
  const step = data.state.step;
  const dir = checkpointFolder(out, step);
  const parent = join(out, CHECKPOINTS_DIR);
  try {
    await Deno.mkdir(parent, { recursive: true });
  } catch (e) {
    throw writeError(parent, e);
  }
  const tmp = tempName(dir);
  try {
    try {
      await Deno.mkdir(tmp);
    } catch (e) {
      throw writeError(tmp, e);
    }
    await saveModel(tmp, data.model);
    await saveTrainingState(tmp, data.state);
    await writeAtomic(join(tmp, METRICS_FILE), (f) => writeAll(f, data.metrics));
    const files: Record<string, { bytes: number; sha256: string }> = {};
    for (const name of await fileNames(tmp)) files[name] = await fileDigest(join(tmp, name));
    const manifest = JSON.stringify({ step, files }, null, 2) + "\n";
    await writeAtomic(join(tmp, MANIFEST_FILE), (f) => writeAll(f, new TextEncoder().encode(manifest)));
    await syncFolder(tmp);
    // The same step saved again (a resumed run that had saved past it before a crash) replaces it.
    await retireFolder(dir);
    try {
      await Deno.rename(tmp, dir);
    } catch (e) {
      throw writeError(dir, e);
    }
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    // The temporary folder is gone: name the file as the checkpoint would have held it.
    throw e instanceof CheckpointError ? new CheckpointError(e.message.replaceAll(tmp, dir)) : e;
  }
  await syncFolder(parent);
  if (options.keep !== undefined) {
    for (const old of (await stepFolders(out)).slice(options.keep)) await retireFolder(old.dir);
  }
  await publishCheckpoint(out, dir, { state: false });
  return dir;
}

/** Options of {@linkcode publishCheckpoint}. */
export interface PublishOptions {
  /** Also link `state.json`: the run's processes do at their end, which marks the run finished. */
  state: boolean;
}

/**
 * Links the model files of the checkpoint folder `dir` into the run folder `out` (copies them
 * where hard links cannot be made), each renamed over the file it replaces.
 *
 * @throws {CheckpointError} naming the file when one cannot be written.
 */
export async function publishCheckpoint(out: string, dir: string, options: PublishOptions): Promise<void> {
  const names = [CONFIG_FILE, ...TOKENIZER_FILES, WEIGHTS_FILE, ...(options.state ? [STATE_FILE] : [])];
  for (const name of names) {
    const source = join(dir, name);
    const target = join(out, name);
    // Renaming a link over another link of the same file does nothing and would leave the temporary name.
    if (await sameFile(source, target)) continue;
    const tmp = tempName(target);
    try {
      await Deno.link(source, tmp);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue; // a tokenizer file the model does not have
      try {
        await Deno.copyFile(source, tmp);
      } catch (e) {
        await Deno.remove(tmp).catch(() => {});
        throw writeError(target, e);
      }
    }
    try {
      await Deno.rename(tmp, target);
    } catch (e) {
      await Deno.remove(tmp).catch(() => {});
      throw writeError(target, e);
    }
  }
}

/** What {@linkcode latestRunCheckpoint} found. */
export interface LatestCheckpoint {
  /** The newest checkpoint that verifies, if any. */
  checkpoint?: RunCheckpoint;
  /** One line for each folder removed or set aside on the way. */
  notes: string[];
}

/**
 * The newest checkpoint of the run folder `out` whose files match its manifest. On the way it
 * removes the temporary files and folders of writes that never finished and sets each newer
 * checkpoint that fails the check aside (renamed `step-N.damaged`), with a note for each.
 */
export async function latestRunCheckpoint(out: string): Promise<LatestCheckpoint> {
  const notes: string[] = [];
  try {
    for await (const entry of Deno.readDir(out)) {
      if (entry.isFile && TEMP_FILE.test(entry.name)) {
        await Deno.remove(join(out, entry.name));
        notes.push(`${join(out, entry.name)}: a file whose write did not finish; removed`);
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory)) throw e;
  }
  const parent = join(out, CHECKPOINTS_DIR);
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(parent));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return { notes };
    throw e;
  }
  for (const entry of entries) {
    if (!entry.name.startsWith(".")) continue;
    await Deno.remove(join(parent, entry.name), { recursive: true });
    if (entry.name.endsWith(".tmp")) {
      notes.push(`${join(parent, entry.name)}: a save that did not finish; removed`);
    }
  }
  for (const { dir, step } of await stepFolders(out)) {
    const problem = await checkFolder(dir, step);
    if (problem === undefined) return { checkpoint: { dir, step }, notes };
    let aside = `${dir}.damaged`;
    while (await exists(aside)) aside = `${dir}.damaged-${crypto.randomUUID().slice(0, 8)}`;
    await Deno.rename(dir, aside);
    notes.push(`${dir}: ${problem}; set aside as ${aside}`);
  }
  return { notes };
}

/** The newest step among the checkpoint folders of `out` (unverified), or undefined. */
export async function newestCheckpointStep(out: string): Promise<number | undefined> {
  return (await stepFolders(out))[0]?.step;
}

/**
 * Removes every checkpoint of `out` (a new run in an old run's folder), each folder renamed out of
 * sight first so that none is found half-removed.
 */
export async function clearRunCheckpoints(out: string): Promise<void> {
  for (const { dir } of await stepFolders(out)) await retireFolder(dir);
}

/** The checkpoint folders of `out`, newest first. */
async function stepFolders(out: string): Promise<RunCheckpoint[]> {
  const parent = join(out, CHECKPOINTS_DIR);
  const found: RunCheckpoint[] = [];
  try {
    for await (const entry of Deno.readDir(parent)) {
      const match = STEP_FOLDER.exec(entry.name);
      if (match && entry.isDirectory) found.push({ dir: join(parent, entry.name), step: Number(match[1]) });
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return [];
    throw e;
  }
  return found.sort((a, b) => b.step - a.step);
}

/** Why the checkpoint folder `dir` of `step` cannot be resumed from, or undefined when it can. */
async function checkFolder(dir: string, step: number): Promise<string | undefined> {
  let manifest: { step?: unknown; files?: Record<string, { bytes?: unknown; sha256?: unknown }> };
  try {
    manifest = JSON.parse(await Deno.readTextFile(join(dir, MANIFEST_FILE)));
  } catch (e) {
    return `${MANIFEST_FILE} cannot be read (${(e as Error).message.split("\n")[0]})`;
  }
  if (manifest?.step !== step || typeof manifest.files !== "object" || manifest.files === null) {
    return `${MANIFEST_FILE} is not the manifest of step ${step}`;
  }
  for (const name of REQUIRED_FILES) {
    if (!Object.hasOwn(manifest.files, name)) return `${MANIFEST_FILE} does not list ${name}`;
  }
  for (const [name, expected] of Object.entries(manifest.files)) {
    let actual;
    try {
      actual = await fileDigest(join(dir, name));
    } catch (e) {
      return `${name} cannot be read (${(e as Error).message.split("\n")[0]})`;
    }
    if (actual.bytes !== expected?.bytes) return `${name} has ${actual.bytes} bytes, not ${expected?.bytes}`;
    if (actual.sha256 !== expected?.sha256) return `${name} does not match its SHA-256`;
  }
  return undefined;
}

/** The names of the files (not folders) in `dir`, sorted. */
async function fileNames(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) if (entry.isFile) names.push(entry.name);
  return names.sort();
}

/** Whether `a` and `b` are links to one file. */
async function sameFile(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([Deno.stat(a).catch(() => null), Deno.stat(b).catch(() => null)]);
  return x !== null && y !== null && x.ino !== null && x.ino === y.ino && x.dev === y.dev;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}
