/**
 * scripts/fsdp_train.py, the PyTorch trainer for many GPUs, against this project: it trains a model
 * that `deno task inherit` derived on shards that `prepare` wrote, in two processes on the CPU
 * (gloo), and what it writes evaluates here to the loss it printed. The one suite that needs Python:
 * Debian's `python3-torch` at /usr/bin/python3 (without transformers: the script's own GPT-2 and
 * Llama). One test also needs a Python with transformers, from `FSDP_TRANSFORMERS_PYTHON` or the
 * venv `/tmp/venvf` (`python3 -m venv /tmp/venvf && /tmp/venvf/bin/pip install torch transformers
 * safetensors numpy`), and is skipped without one.
 *
 * Processes are started the way `torch.distributed.run` starts them (RANK, WORLD_SIZE, LOCAL_RANK,
 * MASTER_ADDR, MASTER_PORT): Debian's torch 1.13 launcher fails under Python 3.11 unless given
 * `--redirects 9:1 --tee 9:1` (its Std.from_str("0") returns None there).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { getGpu } from "@inheritune/kernels";
import {
  type Checkpoint,
  checkpointTokenizer,
  createModel,
  inherit,
  loadModel,
  saveModel,
  train,
  validationLoss,
} from "@inheritune/core";
import { BatchSampler, openDataset, prepare, type TokenSource, writeShard } from "@inheritune/data";
import { rand, withTempDir } from "../_util.ts";
import { FAMILY_FIXTURES, FIXTURES } from "../core/_fixtures.ts";

const PYTHON = "/usr/bin/python3";
/** A Python with transformers, for the one test that needs it. */
const TRANSFORMERS_PYTHON = Deno.env.get("FSDP_TRANSFORMERS_PYTHON") ?? "/tmp/venvf/bin/python";
const ROOT = new URL("../../", import.meta.url).pathname;
const SCRIPT = join(ROOT, "scripts", "fsdp_train.py");
/** Longest a run may take before it is killed (a process group waiting on a dead peer never ends). */
const RUN_LIMIT_MS = 120_000;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Whether `python` imports `modules` (a comma-separated list). */
async function imports(python: string, modules: string): Promise<boolean> {
  try {
    const out = await new Deno.Command(python, { args: ["-c", `import ${modules}`], stderr: "null" })
      .output();
    return out.success;
  } catch {
    return false; // no such Python
  }
}

async function requireTorch(): Promise<void> {
  if (!await imports(PYTHON, "torch, numpy")) {
    throw new Error(
      `${PYTHON} cannot import torch and numpy: this suite needs Debian's python3-torch ` +
        `(apt-get install -y python3-torch)`,
    );
  }
}

function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return (listener.addr as Deno.NetAddr).port;
}

/** How {@linkcode runScript} runs: processes (one plain process when 1), the script and the Python. */
interface RunOptions {
  processes?: number;
  script?: string;
  python?: string;
}

/** Runs `python3 SCRIPT ...args` in `processes` processes and waits for all. */
async function runScript(args: string[], options: RunOptions = {}): Promise<Run[]> {
  const { processes = 1, script = SCRIPT, python = PYTHON } = options;
  const port = processes > 1 ? freePort() : 0;
  const children = Array.from({ length: processes }, (_, rank) => {
    const env: Record<string, string> = { OMP_NUM_THREADS: "1", PYTHONUNBUFFERED: "1" };
    if (processes > 1) {
      Object.assign(env, {
        RANK: String(rank),
        LOCAL_RANK: String(rank),
        WORLD_SIZE: String(processes),
        LOCAL_WORLD_SIZE: String(processes),
        MASTER_ADDR: "127.0.0.1",
        MASTER_PORT: String(port),
      });
    }
    return new Deno.Command(python, { args: [script, ...args], env, stdout: "piped", stderr: "piped" })
      .spawn();
  });
  const timer = setTimeout(() => {
    for (const c of children) {
      try {
        c.kill("SIGKILL");
      } catch {
        // already exited
      }
    }
  }, RUN_LIMIT_MS);
  try {
    const text = (b: Uint8Array): string => new TextDecoder().decode(b);
    return (await Promise.all(children.map((c) => c.output()))).map((o) => ({
      code: o.code,
      stdout: text(o.stdout),
      stderr: text(o.stderr),
    }));
  } finally {
    clearTimeout(timer);
  }
}

/** Runs and requires every process to succeed; returns rank 0's output. */
async function trainScript(args: string[], options: RunOptions = {}): Promise<Run> {
  const processes = options.processes ?? 1;
  const runs = await runScript(args, options);
  runs.forEach((r, rank) =>
    assert.equal(r.code, 0, `rank ${rank} of ${processes} failed:\n${r.stdout}\n${r.stderr}`)
  );
  return runs[0];
}

async function metrics(dir: string): Promise<Record<string, number>[]> {
  return (await Deno.readTextFile(join(dir, "metrics.jsonl"))).trim().split("\n").map((l) => JSON.parse(l));
}

/** Asserts every step's loss within `tol` of the expected one; prints the largest difference. */
function assertLossesClose(actual: number[], expected: number[], tol: number, what: string): void {
  assert.equal(
    actual.length,
    expected.length,
    `${what}: ${actual.length} losses, expected ${expected.length}`,
  );
  actual.forEach((v, i) => {
    assert.ok(
      Math.abs(v - expected[i]) <= tol,
      `${what}: step ${i + 1} loss ${v} vs ${expected[i]} (tolerance ${tol})`,
    );
  });
  const worst = Math.max(...actual.map((v, i) => Math.abs(v - expected[i])));
  console.log(`  ${what}: largest loss difference ${worst.toExponential(2)} over ${actual.length} steps`);
}

/**
 * The per-step losses of `deno task train`'s trainer on `model` with the script runs' recipe
 * (`COMMON`: seed 5, lr 1e-3, one warm-up step) and a global batch of 4 windows of T.
 */
async function denoLosses(
  model: Checkpoint,
  source: TokenSource,
  options: { T: number; steps: number; out: string },
): Promise<number[]> {
  const { T, steps, out } = options;
  const result = await train({
    gpu: await getGpu(),
    config: model.config,
    params: model.params,
    batches: new BatchSampler(source, { B: 4, T, shuffle: true, seed: 5 }),
    out,
    steps,
    B: 4,
    T,
    lr: 1e-3,
    warmup: 1,
    logEvery: 1,
  });
  return result.history.map((m) => m.loss);
}

/** Seeded English-like documents separated for `prepare`, about 20 kB of bytes. */
function corpus(): string {
  const words = (
    "the model keeps its first blocks and trains them on a small subset of the data while a larger " +
    "reference supplies embeddings attention weights and a head so that training starts from a good point"
  ).split(" ");
  const r = rand(4000, 42);
  const docs: string[] = [];
  for (let d = 0, i = 0; d < 40; d++) {
    const doc: string[] = [];
    for (let w = 0; w < 80; w++) doc.push(words[Math.floor((r[i++ % r.length] + 1) / 2 * words.length)]);
    docs.push(doc.join(" ") + ".");
  }
  return docs.join("<|endoftext|>");
}

const COMMON = ["--ctx", "32", "--lr", "1e-3", "--warmup", "1", "--log-every", "1", "--seed", "5"];

Deno.test("fsdp_train.py continues an inherited model across processes, and Deno reads what it wrote", async (t) => {
  await requireTorch();
  await withTempDir(async (dir) => {
    const model = join(dir, "inherited");
    const data = join(dir, "data");
    await saveModel(model, inherit(await loadModel(join(ROOT, "models", "brown-ref")), { layers: 2 }));
    await Deno.writeTextFile(join(dir, "text.txt"), corpus());
    await prepare({ inputs: [join(dir, "text.txt")], out: data, tokenizer: "bytes", valFraction: 0.2 });
    const two = join(dir, "two");
    const run = await trainScript(
      ["--model", model, "--data", data, "--out", two, "--steps", "5", "--batch", "2", ...COMMON],
      { processes: 2 },
    );
    const twoLosses = (await metrics(two)).map((m) => m.loss);

    await t.step("two processes on gloo write a model folder and metrics.jsonl for 5 steps", async () => {
      assert.match(run.stdout, /2 processes on cpu \(gloo\)/);
      const lines = await metrics(two);
      assert.deepEqual(lines.map((m) => m.step), [1, 2, 3, 4, 5]);
      for (const m of lines) {
        for (const key of ["loss", "lr", "tokens_per_s", "tokens", "elapsed_s", "epoch"]) {
          assert.equal(typeof m[key], "number", `metrics.jsonl step ${m.step}: ${key}`);
        }
      }
      assert.equal(lines[4].tokens, 5 * 4 * 32);
      assert.ok(twoLosses.every(Number.isFinite));
      const state = JSON.parse(await Deno.readTextFile(join(two, "state.json")));
      assert.equal(state.step, 5);
    });

    await t.step(
      "the written folder evaluates in Deno to the validation loss the script printed",
      async () => {
        const printed = run.stdout.match(/^val_loss (\S+) over (\d+) tokens at ctx 32$/m);
        assert.ok(printed, `no val_loss line in:\n${run.stdout}`);
        const checkpoint = await loadModel(two);
        assert.equal(checkpoint.config.n_layer, 2);
        assert.equal(checkpoint.config.tokenizer, "bytes");
        using dataset = await openDataset(data);
        const gpt = createModel(await getGpu(), checkpoint.config, checkpoint.params, { B: 8, T: 32 });
        try {
          const ours = await validationLoss(gpt, dataset.split("val"));
          assert.equal(ours.tokens, Number(printed[2]));
          const rel = Math.abs(ours.loss - Number(printed[1])) / ours.loss;
          assert.ok(rel <= 1e-4, `Deno ${ours.loss} vs script ${printed[1]}: relative error ${rel}`);
          console.log(
            `  validation loss: script ${printed[1]}, Deno ${ours.loss}, relative error ${
              rel.toExponential(2)
            }`,
          );
        } finally {
          gpt.destroy();
        }
      },
    );

    await t.step("one process with the same global batch gives the same losses", async () => {
      const one = join(dir, "one");
      // 1 process × 2 rows × 2 micro-steps = 2 processes × 2 rows × 1 micro-step
      await trainScript([
        "--model",
        model,
        "--data",
        data,
        "--out",
        one,
        "--steps",
        "5",
        "--batch",
        "2",
        "--accumulation",
        "2",
        ...COMMON,
      ]);
      assertLossesClose((await metrics(one)).map((m) => m.loss), twoLosses, 1e-4, "1 vs 2 processes");
    });

    await t.step("the losses are the Deno trainer's on the same model, data, batch and seed", async () => {
      using dataset = await openDataset(data);
      const deno = await denoLosses(await loadModel(model), dataset.split("train"), {
        T: 32,
        steps: 5,
        out: join(dir, "deno"),
      });
      assertLossesClose(twoLosses, deno, 1e-4, "script vs Deno trainer");
    });
  });
});

Deno.test("fsdp_train.py trains a tied, sharded Llama folder alike in 1 and 2 processes", async () => {
  await requireTorch();
  await withTempDir(async (dir) => {
    const check = await runScript([], { script: join(ROOT, "scripts", "llama_torch_check.py") });
    assert.equal(check[0].code, 0, `llama_torch_check.py:\n${check[0].stdout}${check[0].stderr}`);
    const model = join(dir, "llama");
    const made = await runScript(
      ["--write", model, "--tied", "--sharded"],
      { script: join(ROOT, "scripts", "llama_torch_check.py") },
    );
    assert.equal(made[0].code, 0, made[0].stderr);
    const tokens = Array.from(rand(3000, 9), (x) => Math.floor((x + 1) * 128));
    await writeShard(join(dir, "train.bin"), tokens);
    const args = (out: string): string[] => [
      "--model",
      model,
      "--data",
      join(dir, "train.bin"),
      "--out",
      out,
      "--steps",
      "3",
      "--ctx",
      "16",
      "--log-every",
      "1",
    ];
    await trainScript([...args(join(dir, "one")), "--batch", "4"]);
    await trainScript([...args(join(dir, "two")), "--batch", "2"], { processes: 2 });
    const one = (await metrics(join(dir, "one"))).map((m) => m.loss);
    assertLossesClose(
      (await metrics(join(dir, "two"))).map((m) => m.loss),
      one,
      1e-4,
      "Llama 1 vs 2 processes",
    );
    const names = new TextDecoder().decode(
      (await Deno.readFile(join(dir, "two", "model.safetensors"))).slice(0, 4096),
    );
    assert.match(names, /"model\.embed_tokens\.weight"/);
    assert.doesNotMatch(names, /"lm_head\.weight"/, "a tied head is stored once, as the embedding");
  });
});

Deno.test("fsdp_train.py continues stories260K's first 2 blocks; Deno evaluates its folder to the printed loss and trains alike", async () => {
  await requireTorch();
  await withTempDir(async (dir) => {
    const stories = join(ROOT, "models", "stories260K", "model.gguf");
    const reference = await loadModel(stories);
    const model = join(dir, "stories-2");
    await saveModel(model, inherit(reference, { layers: 2 }));
    const text = (await Deno.readTextFile(join(ROOT, "corpora", "tinystories", "valid_head.txt"))).slice(
      0,
      40_000,
    );
    await Deno.writeTextFile(join(dir, "stories.txt"), text);
    const data = join(dir, "data");
    await prepare({
      inputs: [join(dir, "stories.txt")],
      out: data,
      tokenizer: await checkpointTokenizer(reference, stories),
      documents: "paragraphs",
      valFraction: 0.2,
    });
    const out = join(dir, "two");
    const run = await trainScript(
      ["--model", model, "--data", data, "--out", out, "--steps", "4", "--batch", "2", ...COMMON],
      { processes: 2 },
    );
    const printed = run.stdout.match(/^val_loss (\S+) over (\d+) tokens at ctx 32$/m);
    assert.ok(printed, `no val_loss line in:\n${run.stdout}`);
    const written = await loadModel(out);
    assert.equal(written.config.family, "llama");
    assert.ok(written.tokenizerFiles?.has("tokenizer.model"), "the tokenizer travels with the model");
    using dataset = await openDataset(data);
    const net = createModel(await getGpu(), written.config, written.params, { B: 8, T: 32 });
    try {
      const ours = await validationLoss(net, dataset.split("val"));
      assert.equal(ours.tokens, Number(printed[2]));
      const rel = Math.abs(ours.loss - Number(printed[1])) / ours.loss;
      assert.ok(rel <= 1e-4, `Deno ${ours.loss} vs script ${printed[1]}: relative error ${rel}`);
      console.log(
        `  stories validation loss: script ${printed[1]}, Deno ${ours.loss}, relative error ${
          rel.toExponential(2)
        }`,
      );
    } finally {
      net.destroy();
    }
    const deno = await denoLosses(await loadModel(model), dataset.split("train"), {
      T: 32,
      steps: 4,
      out: join(dir, "deno"),
    });
    assertLossesClose((await metrics(out)).map((m) => m.loss), deno, 1e-4, "LLaMA script vs Deno trainer");
  });
});

Deno.test("fsdp_train.py refuses bad input with one line on stderr and exit code 2", async () => {
  await requireTorch();
  await withTempDir(async (dir) => {
    const model = join(dir, "ref");
    const reference = await loadModel(join(ROOT, "models", "brown-ref"));
    await saveModel(model, inherit(reference, { layers: 1 }));
    const shard = join(dir, "bytes_train.bin");
    await writeShard(shard, Array.from({ length: 200 }, (_, i) => i % 256));
    const bert = join(dir, "bert");
    await Deno.mkdir(bert);
    await Deno.writeTextFile(join(bert, "config.json"), JSON.stringify({ model_type: "bert" }));
    const otherTokenizer = join(dir, "gpt2-data");
    await Deno.mkdir(otherTokenizer);
    await Deno.copyFile(shard, join(otherTokenizer, "train_000000.bin"));
    const file = { file: "train_000000.bin", tokens: 200, sha256: "" };
    await Deno.writeTextFile(
      join(otherTokenizer, "meta.json"),
      JSON.stringify({
        tokenizer: "gpt2",
        vocabSize: 50257,
        splits: {
          train: { tokens: 200, documents: 1, shards: [file] },
          val: { tokens: 0, documents: 0, shards: [] },
        },
      }),
    );
    const wide = join(dir, "wide_train.bin");
    await writeShard(wide, [1, 2, 300, 4]);
    const out = join(dir, "out");
    const cases: [string[], RegExp][] = [
      [
        ["--model", bert, "--data", shard, "--out", out],
        /bert: model_type "bert" needs transformers \(pip install transformers\); without it this script trains gpt2 and llama$/m,
      ],
      [
        ["--model", join(ROOT, "tests", "fixtures", "qwen3_tiny"), "--data", shard, "--out", out],
        /model_type "qwen3" needs transformers \(pip install transformers\)/,
      ],
      [
        ["--model", model, "--data", shard, "--out", out, "--modeling", "transformers"],
        /^fsdp_train\.py: --modeling transformers: transformers is not installed \(pip install transformers\)$/m,
      ],
      [["--model", join(dir, "nope"), "--data", shard, "--out", out], /no such model folder/],
      [
        ["--model", model, "--data", otherTokenizer, "--out", out],
        /shards of another tokenizer.*"gpt2".*"bytes"/,
      ],
      [["--model", model, "--data", wide, "--out", out], /token 300, not below the model's vocabulary 256/],
      [["--model", model, "--data", join(dir, "none"), "--out", out], /no such dataset folder or shard file/],
      [["--model", model, "--data", shard, "--out", out, "--steps", "0"], /--steps: must be ≥ 1, got 0/],
      [["--model", model, "--data", shard, "--out", out, "--bogus"], /unrecognized arguments: --bogus/],
      [["--model", model, "--data", shard, "--out", out, "--ctx", "65"], /--ctx must be ≤ 64/],
    ];
    for (const [args, pattern] of cases) {
      const [r] = await runScript(args);
      assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, pattern);
    }
  });
});

Deno.test({
  name:
    "with transformers, fsdp_train.py continues every family's folder through its own class; Deno reads it and trains alike",
  ignore: !await imports(TRANSFORMERS_PYTHON, "torch, transformers, numpy"),
  fn: async () => {
    await withTempDir(async (dir) => {
      // Ids below every fixture's vocabulary (64 and up), a cycle the models can learn.
      const ids = Array.from({ length: 1500 }, (_, i) => ((i % 37) * 17 + 3) % 64);
      const data = join(dir, "data");
      await Deno.mkdir(data);
      await writeShard(join(data, "train_000000.bin"), ids);
      await writeShard(join(data, "val_000000.bin"), ids.slice(0, 200));
      const python = TRANSFORMERS_PYTHON;
      // COMMON's recipe at context 16 (the last --ctx counts).
      const args = (model: string, out: string): string[] => [
        ...["--model", model, "--data", data, "--out", out, "--steps", "4"],
        ...COMMON,
        ...["--ctx", "16"],
      ];
      for (const c of FAMILY_FIXTURES) {
        const model = join(FIXTURES, c.name);
        const out = join(dir, c.name);
        const run = await trainScript([...args(model, out), "--batch", "4"], { python });
        assert.match(run.stdout, /transformers \d+\.\d+\S* \w+ForCausalLM/, `${c.name}: ${run.stdout}`);
        // What it wrote is the family's folder: the same configuration and tensors, trained.
        const [reference, written] = [await loadModel(model), await loadModel(out)];
        assert.deepEqual(written.config, reference.config, c.name);
        assert.deepEqual(
          [...written.params].map(([k, p]) => [k, p.length]),
          [...reference.params].map(([k, p]) => [k, p.length]),
        );
        assert.ok([...written.params].some(([k, p]) => p.some((v, i) => v !== reference.params.get(k)![i])));
        if (!c.runs) continue;
        const printed = run.stdout.match(/^val_loss (\S+) over (\d+) tokens at ctx 16$/m);
        assert.ok(printed, `no val_loss line in:\n${run.stdout}`);
        using dataset = await openDataset(data);
        const net = createModel(await getGpu(), written.config, written.params, { B: 4, T: 16 });
        try {
          const ours = await validationLoss(net, dataset.split("val"));
          const rel = Math.abs(ours.loss - Number(printed[1])) / ours.loss;
          assert.ok(
            rel <= 1e-5,
            `${c.name}: Deno ${ours.loss} vs script ${printed[1]}: relative error ${rel}`,
          );
          console.log(`  ${c.name} validation loss: script vs Deno relative error ${rel.toExponential(2)}`);
        } finally {
          net.destroy();
        }
        const deno = await denoLosses(reference, dataset.split("train"), {
          T: 16,
          steps: 4,
          out: join(dir, `${c.name}-deno`),
        });
        assertLossesClose(
          (await metrics(out)).map((m) => m.loss),
          deno,
          1e-4,
          `${c.name} through transformers vs Deno trainer`,
        );
      }
      // FSDP over two processes takes the same steps as one process.
      const two = join(dir, "qwen3-two");
      const run = await trainScript([...args(join(FIXTURES, "qwen3_tiny"), two), "--batch", "2"], {
        python,
        processes: 2,
      });
      assert.match(run.stdout, /FSDP \(fully_shard/);
      assertLossesClose(
        (await metrics(two)).map((m) => m.loss),
        (await metrics(join(dir, "qwen3_tiny"))).map((m) => m.loss),
        1e-4,
        "qwen3 through transformers, 1 vs 2 processes",
      );
    });
  },
});
