/**
 * Few-shot contexts as lm-evaluation-harness 0.4.13 builds them (`api/task.py`
 * `fewshot_context` and `build_qa_turn`, `api/samplers.py`): each item's context becomes its
 * description (MMLU's), then K examples, each its `doc_to_text`, the target delimiter, its answer
 * and the few-shot delimiter "\n\n", then the item's own text. Examples come from a pool (a
 * `--fewshot-file`, the harness's training or dev split) or from the task's own items, the item
 * itself left out, and are drawn as the harness draws them: one `random.Random(seed)` per task
 * (seed 1234, the harness's `fewshot_random_seed`), sampled item after item in file order with
 * Python's `sample`, one extra example drawn and the item dropped where the harness passes it to
 * the sampler; MMLU takes its subject's first K (`first_n`).
 *
 * @module
 */
import { PyRandom } from "./_py_random.ts";
import { HARNESS_TASKS, type Task, type TaskItem } from "./tasks.ts";

/** The harness's `fewshot_delimiter`, after each example. */
export const FEWSHOT_DELIMITER = "\n\n";
/** The harness's default `fewshot_random_seed`. */
export const DEFAULT_FEWSHOT_SEED = 1234;

/** Options of {@linkcode withFewshot}. */
export interface FewshotOptions {
  /** Examples per item (the harness's `num_fewshot`). */
  shots: number;
  /** Items the examples are drawn from (default: the task's own, each item left out of its own). */
  pool?: Task;
  /** Seed of the sampler (default {@linkcode DEFAULT_FEWSHOT_SEED}). */
  seed?: number;
}

/** `item` as a few-shot example: its text, the target delimiter and its answer. */
function example(item: TaskItem): string {
  if (item.example !== undefined) return item.example;
  const gold = item.candidates[item.gold];
  return gold.context.slice(item.description?.length ?? 0) + gold.continuation;
}

/** Whether `a` and `b` are the same document (the harness compares documents by value). */
function same(a: TaskItem, b: TaskItem): boolean {
  return a === b || (a.source !== undefined && a.source === b.source);
}

/**
 * `task` with `options.shots` examples before every item's text (its candidates' contexts, MC2's
 * too), drawn as lm-evaluation-harness draws them for the same files and seed; unchanged for a
 * task the harness keeps zero-shot (TruthfulQA, `HARNESS_TASKS`' `zeroShotOnly`).
 *
 * @throws {RangeError} when a pool has fewer items than an item needs examples.
 */
export function withFewshot(task: Task, options: FewshotOptions): Task {
  const { shots } = options;
  const harness = HARNESS_TASKS[task.format];
  if (shots === 0 || harness.zeroShotOnly) return task;
  const own = options.pool === undefined;
  // Drawing from the file itself is the harness with `fewshot_split` equal to `test_split`.
  const evalDocPassed = own || harness.evalDocPassed;
  // MMLU's subjects are separate tasks in the harness, each with its pool and its sampler.
  const pools = new Map<string | undefined, { items: TaskItem[]; rnd: PyRandom }>();
  for (const item of (options.pool ?? task).items) {
    let pool = pools.get(item.group);
    if (!pool) {
      pools.set(item.group, pool = { items: [], rnd: new PyRandom(options.seed ?? DEFAULT_FEWSHOT_SEED) });
    }
    pool.items.push(item);
  }
  const draw = (item: TaskItem): TaskItem[] => {
    const pool = pools.get(item.group);
    const items = pool?.items ?? [];
    const others = (): TaskItem[] => items.filter((x) => !same(x, item));
    const need = shots + (evalDocPassed && harness.sampler === "default" ? 1 : 0);
    const available = evalDocPassed && harness.sampler === "first_n" ? others().length : items.length;
    if (!pool || available < need) {
      throw new RangeError(
        `${task.name}: ${shots} few-shot examples need ${need} items in the pool${
          item.group === undefined ? "" : ` of ${item.group}`
        }, which has ${available}`,
      );
    }
    if (harness.sampler === "first_n") return (evalDocPassed ? others() : items).slice(0, shots);
    if (!evalDocPassed) return pool.rnd.sample(items, shots);
    const drawn = pool.rnd.sample(items, shots + 1).filter((x) => !same(x, item)).slice(0, shots);
    // As the harness: when copies of the item took more than the one extra draw, draw again
    // from the pool without them.
    return drawn.length === shots ? drawn : pool.rnd.sample(others(), shots);
  };
  const items = task.items.map((item): TaskItem => {
    const shotsText = draw(item).map((x) => example(x) + FEWSHOT_DELIMITER).join("");
    const at = item.description?.length ?? 0;
    const prefixed = <C extends { context: string }>(c: C): C => ({
      ...c,
      context: c.context.slice(0, at) + shotsText + c.context.slice(at),
    });
    return {
      ...item,
      candidates: item.candidates.map(prefixed),
      ...(item.mc2 ? { mc2: { ...item.mc2, candidates: item.mc2.candidates.map(prefixed) } } : {}),
    };
  });
  return { ...task, items };
}
