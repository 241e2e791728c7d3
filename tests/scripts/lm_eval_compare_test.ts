/**
 * `scripts/lm_eval_compare.py` finds no item on which `deno task eval` and lm-evaluation-harness's
 * HFLM disagree, for stories260K written as a Hugging Face folder, zero-shot and few-shot. Runs only
 * where a Python with lm-eval 0.4.13 exists: `LM_EVAL_PYTHON`, or the venv `/tmp/venvlm` of the
 * script's docstring; ignored elsewhere (CI has no such venv).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadModel, saveModel } from "@inheritune/core";
import { withTempDir } from "../_util.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const PYTHON = Deno.env.get("LM_EVAL_PYTHON") ?? "/tmp/venvlm/bin/python";
const TASKS = join(ROOT, "tests", "fixtures", "tasks");

async function hasLmEval(): Promise<boolean> {
  try {
    const out = await new Deno.Command(PYTHON, {
      args: ["-c", "import lm_eval, transformers"],
      stderr: "null",
    })
      .output();
    return out.success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "lm_eval_compare.py: no disagreement with the harness on HellaSwag and PIQA, 0- and 3-shot",
  ignore: !await hasLmEval(),
  async fn() {
    await withTempDir(async (dir) => {
      const model = join(dir, "stories260K");
      await saveModel(model, await loadModel(join(ROOT, "models", "stories260K", "model.gguf")));
      const runs = [
        ["--task", join(TASKS, "hellaswag.jsonl"), "--task", join(TASKS, "piqa.jsonl")],
        [
          "--num-fewshot",
          "3",
          "--task",
          join(TASKS, "piqa.jsonl"),
          "--fewshot-file",
          join(TASKS, "piqa_train.jsonl"),
        ],
      ];
      for (const args of runs) {
        const out = await new Deno.Command(PYTHON, {
          args: [join(ROOT, "scripts", "lm_eval_compare.py"), "--model", model, ...args],
          cwd: ROOT,
        }).output();
        const stdout = new TextDecoder().decode(out.stdout);
        assert.equal(out.code, 0, stdout + new TextDecoder().decode(out.stderr).slice(-2000));
        const summaries = stdout.split("\n").filter((l) => / items, \d+ disagreements/.test(l));
        assert.equal(summaries.length, args.filter((a) => a === "--task").length, stdout);
        for (const line of summaries) assert.match(line, /, 0 disagreements,/);
      }
    });
  },
});
