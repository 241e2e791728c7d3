import assert from "node:assert/strict";
import { runCli } from "../_util.ts";

// Each bad command line must end in one line on stderr naming the problem and exit code 2,
// before any benchmark starts.
const CASES: [string, string[], RegExp][] = [
  [
    "bench/compare_pytorch.ts",
    ["--device", "tpu"],
    /^compare_pytorch: --device must be cpu or cuda, got "tpu"$/,
  ],
  [
    "bench/compare_pytorch.ts",
    ["--configs", "tiny,huge"],
    /^compare_pytorch: unknown configuration "huge": use tiny, 124m, vocab, vocab64, stories, seed, seed-small$/,
  ],
  [
    "bench/compare_pytorch.ts",
    ["--matmul", "1024,x"],
    /^compare_pytorch: --matmul must be an integer, got "x"$/,
  ],
  ["bench/compare_pytorch.ts", ["--bogus"], /^compare_pytorch: Unknown option '--bogus'/],
  ["bench/core/train_step.ts", ["tiny", "--steps", "0"], /^train_step: --steps must be ≥ 1, got 0$/],
  [
    "bench/core/step_profile.ts",
    ["tiny", "--batch", "two"],
    /^step_profile: --batch must be an integer, got "two"$/,
  ],
  [
    "bench/kernels/matmul_sweep.ts",
    ["--blockings", "3x3"],
    /^matmul_sweep: blocking "3x3": expected ROWSxCOLS/,
  ],
  [
    "bench/kernels/matmul_ceiling.ts",
    ["--size", "100"],
    /^matmul_ceiling: --size must be a multiple of 64, got 100$/,
  ],
  ["bench/data/throughput.ts", ["--mb", "0"], /^throughput: --mb must be ≥ 1, got 0$/],
  ["bench/server/load.ts", ["--clients", "many"], /^load: --clients must be an integer, got "many"$/],
];

Deno.test("bench scripts reject bad flags with one line and exit code 2", async () => {
  for (const [script, args, message] of CASES) {
    const r = await runCli(args, { script });
    const lines = r.stderr.split("\n").filter((l) => l !== "");
    assert.equal(r.code, 2, `${script} ${args.join(" ")}: ${r.stderr}`);
    assert.equal(lines.length, 1, `${script} ${args.join(" ")}: ${r.stderr}`);
    assert.match(lines[0], message);
  }
});
