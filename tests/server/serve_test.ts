import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateToken, LiveRun, serveRun } from "@inheritune/server";
import { DEFAULT_HOST, DEFAULT_PORT, serveTraining } from "../../cli/serve.ts";
import { COMMAND as TRAIN } from "../../cli/train.ts";
import { parseCommand } from "../../cli/_flags.ts";
import { assertRejects } from "../_assert.ts";
import { runCli, withTempDir } from "../_util.ts";

const ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));

async function until(what: string, ok: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("serveRun listens on 127.0.0.1 with a fresh 256-bit stop token", async () => {
  const run = new LiveRun({ name: "net", totalSteps: 10 });
  const server = serveRun(run, { port: 0 });
  try {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.match(server.token!, /^[0-9a-f]{64}$/);
    assert.notEqual(generateToken(), server.token);
    const status = await (await fetch(server.url + "api/status")).json();
    assert.equal(status.name, "net");
    const denied = await fetch(server.url + "api/stop", { method: "POST" });
    assert.equal(denied.status, 401);
    await denied.body?.cancel();
    const ok = await fetch(server.url + "api/stop", {
      method: "POST",
      headers: { authorization: `Bearer ${server.token}` },
    });
    assert.equal(ok.status, 202);
    await ok.body?.cancel();
    assert.equal(run.signal.aborted, true);
  } finally {
    await server.close();
  }
});

Deno.test("a client dropping its event-stream connection is unsubscribed", async () => {
  const run = new LiveRun({ name: "net" });
  const server = serveRun(run, { port: 0 });
  try {
    const abort = new AbortController();
    const res = await fetch(server.url + "api/events", { signal: abort.signal });
    await res.body!.getReader().read();
    assert.equal(run.subscribers, 1);
    abort.abort();
    await until("the server to notice the disconnect", () => run.subscribers === 0);
  } finally {
    await server.close();
  }
});

Deno.test("closing the server ends open event streams with an end event", async () => {
  const run = new LiveRun({ name: "net" });
  const server = serveRun(run, { port: 0 });
  const res = await fetch(server.url + "api/events");
  const text = res.text();
  await until("the client to subscribe", () => run.subscribers === 1);
  run.finish();
  await server.close();
  assert.match(await text, /event: status\ndata: \{[^\n]*"state":"finished"[^\n]*\n\nevent: end\n/);
  await server.finished;
});

/** `train`'s flags parsed from `args` after the required ones. */
function trainFlags(...args: string[]) {
  return parseCommand(TRAIN, ["--data", "d", "--out", "o", ...args])!;
}

Deno.test("--serve takes an optional port: bare, separate or with =", () => {
  assert.equal(trainFlags().serve, undefined);
  assert.equal(trainFlags("--serve").serve, DEFAULT_PORT);
  const bare = trainFlags("--serve", "--steps", "5");
  assert.deepEqual([bare.serve, bare.steps], [DEFAULT_PORT, 5]);
  assert.equal(trainFlags("--serve", "9000").serve, 9000);
  assert.equal(trainFlags("--serve=0", "--lr", "1e-3").serve, 0);
  assert.equal(trainFlags("--serve").host, DEFAULT_HOST);
});

Deno.test("serve flags are checked: --host needs --serve, the port is a TCP port", async () => {
  assert.throws(() => trainFlags("--host", "0.0.0.0"), /^UsageError: --host needs --serve$/);
  assert.throws(() => trainFlags("--serve", "70000"), /--serve must be ≤ 65535/);
  assert.throws(() => trainFlags("--serve", "http"), /--serve must be an integer/);
  const run = { out: "runs/x", config: {}, device: "cpu", steps: 1 };
  const none = await serveTraining({ host: DEFAULT_HOST }, run);
  assert.equal(none.signal, undefined);
  assert.equal(await none.track(Promise.resolve(7)), 7);
});

Deno.test("--serve on a port in use is a usage error naming it", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const run = { out: "runs/x", config: {}, device: "cpu", steps: 1 };
  const port = String(taken.addr.port);
  await assertRejects(
    () => serveTraining({ serve: Number(port), host: DEFAULT_HOST }, run),
    new RegExp(`--serve ${port}: .*already has a server`),
  );
});

Deno.test("`serve --run DIR` serves a finished run read-only; a missing folder exits 2", async () => {
  await withTempDir(async (dir) => {
    const metrics = { step: 1, loss: 5, lr: 6e-4, tokens_per_s: 100, tokens: 32, elapsed_s: 0.3 };
    await Deno.writeTextFile(join(dir, "metrics.jsonl"), JSON.stringify(metrics) + "\n");
    await Deno.writeTextFile(join(dir, "state.json"), JSON.stringify({ step: 1 }));
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "cli.ts", "serve", "--run", dir, "--port", "0"],
      cwd: ROOT,
      stdout: "piped",
    }).spawn();
    try {
      let text = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        text += chunk;
        if (text.includes("\n")) break;
      }
      const url = /read-only at (http:\/\/\S+\/)/.exec(text)?.[1];
      assert.ok(url, text);
      const status = await (await fetch(url + "api/status")).json();
      assert.equal(status.state, "finished");
      assert.equal(status.step, 1);
      const stop = await fetch(url + "api/stop", { method: "POST" });
      assert.equal(stop.status, 409);
      await stop.body?.cancel();
    } finally {
      child.kill();
      await child.status;
    }
    const missing = await runCli(["serve", "--run", join(dir, "nope")]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^inheritune serve: .*nope: no such run folder\n$/);
  });
});
