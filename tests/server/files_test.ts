import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createApp,
  FileRun,
  type Metrics,
  readMetricsFile,
  type RunEvent,
  summarize,
} from "@inheritune/server";
import { assertRejects } from "../_assert.ts";
import { withTempDir } from "../_util.ts";
import { step } from "./_metrics.ts";

const line = (m: Metrics): string => JSON.stringify(m) + "\n";

/** Opens `dir` as a FileRun for `fn`, closing it (and its poll timer) afterwards. */
async function withFileRun(dir: string, fn: (run: FileRun) => Promise<void>): Promise<void> {
  const run = await FileRun.open(dir, { pollMs: 20 });
  try {
    await fn(run);
  } finally {
    run.close();
  }
}

Deno.test("FileRun follows metrics.jsonl as lines are appended, holding back a partial line", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "metrics.jsonl");
    const third = line(step(3));
    await Deno.writeTextFile(path, line(step(1)) + line(step(2)) + third.slice(0, 10));
    await withFileRun(dir, async (run) => {
      assert.deepEqual((await run.metrics()).map((m) => m.step), [1, 2]);
      await Deno.writeTextFile(path, third.slice(10) + line(step(4)), { append: true });
      assert.deepEqual((await run.metrics(1)).map((m) => m.step), [2, 3, 4]);
      const status = await run.status();
      assert.equal(status.state, "running");
      assert.equal(status.step, 4);
      assert.equal(status.can_stop, false);
      assert.equal(status.name, dir.split("/").at(-1));
    });
  });
});

Deno.test("FileRun pushes appended steps to event subscribers by polling", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "metrics.jsonl");
    await Deno.writeTextFile(path, line(step(1)));
    await withFileRun(dir, async (run) => {
      const seen = new Promise<RunEvent>((resolve) => run.subscribe(resolve));
      await Deno.writeTextFile(path, line(step(2)), { append: true });
      const event = await seen;
      assert.equal(event.type, "metrics");
      assert.equal(event.type === "metrics" && event.metrics.step, 2);
    });
  });
});

Deno.test("FileRun is finished once state.json is newer than the metrics, with its config and step count", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "metrics.jsonl"), line(step(1)) + line(step(2)));
    await withFileRun(dir, async (run) => {
      assert.equal((await run.status()).total_steps, null);
      await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify({ n_layer: 2 }));
      await Deno.writeTextFile(join(dir, "state.json"), JSON.stringify({ step: 2 }));
      const status = await run.status();
      assert.equal(status.state, "finished");
      assert.equal(status.total_steps, 2);
      assert.deepEqual(status.config, { n_layer: 2 });
      assert.equal(status.eta_s, null);
      // a resumed run appends again: running once more
      await new Promise((r) => setTimeout(r, 20));
      await Deno.writeTextFile(join(dir, "metrics.jsonl"), line(step(3)), { append: true });
      assert.equal((await run.status()).state, "running");
    });
  });
});

Deno.test("FileRun starts its history over when a new run rewrites metrics.jsonl", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "metrics.jsonl");
    await Deno.writeTextFile(path, line(step(1)) + line(step(2)) + line(step(3)));
    await withFileRun(dir, async (run) => {
      const events: string[] = [];
      run.subscribe((e) => events.push(e.type));
      await Deno.writeTextFile(path, line(step(1, { loss: 9 })));
      assert.deepEqual((await run.metrics()).map((m) => m.loss), [9]);
      // rewritten and grown past the old length before the next look
      await Deno.writeTextFile(path, [1, 2, 3, 4, 5].map((n) => line(step(n, { loss: 7 }))).join(""));
      const after = await run.metrics();
      assert.deepEqual(after.map((m) => [m.step, m.loss]), [[1, 7], [2, 7], [3, 7], [4, 7], [5, 7]]);
      assert.deepEqual(events.filter((e) => e === "reset").length, 2);
    });
  });
});

Deno.test("FileRun.open of a missing folder fails naming it; an empty folder is a run with no steps", async () => {
  await withTempDir(async (dir) => {
    await assertRejects(() => FileRun.open(join(dir, "nope")), /nope: no such run folder/);
    await withFileRun(dir, async (run) => {
      const status = await run.status();
      assert.equal(status.step, 0);
      assert.equal(status.state, "running");
    });
  });
});

Deno.test("readMetricsFile skips lines that are not metrics records; a missing file is empty", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "metrics.jsonl");
    assert.deepEqual(await readMetricsFile(path), []);
    await Deno.writeTextFile(path, line(step(1)) + "not json\n" + '{"step":2}\n' + "[]\n" + line(step(3)));
    assert.deepEqual((await readMetricsFile(path)).map((m) => m.step), [1, 3]);
  });
});

Deno.test("GET /api/metrics of a run folder returns the file's records", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "metrics.jsonl"), line(step(1)) + line(step(2, { val_loss: 4 })));
    await withFileRun(dir, async (run) => {
      const body = await (await createApp(run).request("/api/metrics?since=1")).json();
      assert.deepEqual(body.metrics, [step(2, { val_loss: 4 })]);
    });
  });
});

Deno.test("summarize averages throughput over recent steps and restarts the window at a resume", () => {
  // 10 steps at 100 steps/s (3200 tokens/s), then a resumed process at half the speed
  const first = Array.from({ length: 10 }, (_, i) => step(i + 1));
  const resumed = Array.from({ length: 5 }, (_, i) => step(11 + i, { elapsed_s: (i + 1) / 50 }));
  const a = summarize(first, { totalSteps: 20 });
  assert.ok(Math.abs(a.tokens_per_s! - 3200) < 1e-6);
  assert.ok(Math.abs(a.eta_s! - 0.1) < 1e-9, `ETA ${a.eta_s}`);
  const b = summarize([...first, ...resumed], { totalSteps: 20 });
  assert.ok(Math.abs(b.tokens_per_s! - 1600) < 1e-6, `tokens/s ${b.tokens_per_s}`);
  assert.ok(Math.abs(b.eta_s! - 0.1) < 1e-9, `ETA ${b.eta_s}`);
  assert.equal(b.val_loss, null);
  const c = summarize([step(1, { tokens_per_s: 1234 })], { totalSteps: 20 });
  assert.equal(c.tokens_per_s, 1234);
  assert.equal(c.eta_s, null);
});
