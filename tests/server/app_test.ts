import assert from "node:assert/strict";
import { createApp, FileRun, LiveRun, type Metrics, type RunStatus } from "@inheritune/server";
import { withTempDir } from "../_util.ts";
import { step } from "./_metrics.ts";

const TOKEN = "test-token";

function liveApp(history: Metrics[] = []): { run: LiveRun; app: ReturnType<typeof createApp> } {
  const run = new LiveRun({
    name: "tiny",
    config: { n_layer: 1 },
    device: "lavapipe",
    totalSteps: 50,
    history,
  });
  return { run, app: createApp(run, { token: TOKEN }) };
}

/** An event stream reader: `next(n)` waits for and returns the next `n` messages, parsed. */
function events(body: ReadableStream<Uint8Array>): {
  next(count: number): Promise<{ event: string; data: unknown }[]>;
  reader: ReadableStreamDefaultReader<Uint8Array>;
} {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  return {
    reader,
    async next(count) {
      const out: { event: string; data: unknown }[] = [];
      while (out.length < count) {
        const end = text.indexOf("\n\n");
        if (end < 0) {
          const { value, done } = await reader.read();
          if (done) break;
          text += decoder.decode(value, { stream: true });
          continue;
        }
        const lines = text.slice(0, end).split("\n");
        text = text.slice(end + 2);
        const field = (name: string) => lines.find((l) => l.startsWith(name + ": "))?.slice(name.length + 2);
        if (field("event") !== undefined) {
          out.push({ event: field("event")!, data: JSON.parse(field("data")!) });
        }
      }
      return out;
    },
  };
}

Deno.test("GET /api/status reports the live run's step, losses, throughput and ETA", async () => {
  const { app } = liveApp([step(1), step(2), step(3, { val_loss: 4.5 }), step(4)]);
  const res = await app.request("/api/status");
  assert.equal(res.status, 200);
  const s: RunStatus = await res.json();
  assert.equal(s.name, "tiny");
  assert.deepEqual(s.config, { n_layer: 1 });
  assert.equal(s.device, "lavapipe");
  assert.equal(s.state, "running");
  assert.equal(s.step, 4);
  assert.equal(s.total_steps, 50);
  assert.equal(s.tokens, 128);
  assert.equal(s.loss, 4.96);
  assert.equal(s.val_loss, 4.5);
  assert.equal(s.val_step, 3);
  assert.ok(Math.abs(s.tokens_per_s! - 3200) < 1e-6, `tokens/s ${s.tokens_per_s}`);
  assert.ok(Math.abs(s.eta_s! - 0.46) < 1e-9, `ETA ${s.eta_s}`);
  assert.equal(s.can_stop, true);
  assert.equal(s.stop_requested, false);
});

Deno.test("GET /api/status of a run with no logged step yet has nulls, not zeros", async () => {
  const s: RunStatus = await (await liveApp().app.request("/api/status")).json();
  assert.equal(s.step, 0);
  assert.equal(s.loss, null);
  assert.equal(s.tokens_per_s, null);
  assert.equal(s.eta_s, null);
});

Deno.test("GET /api/metrics returns the whole history, or the steps after `since`", async () => {
  const { app, run } = liveApp([step(1), step(2)]);
  run.record(step(3));
  const all = await (await app.request("/api/metrics")).json();
  assert.deepEqual(all.metrics.map((m: Metrics) => m.step), [1, 2, 3]);
  const after = await (await app.request("/api/metrics?since=2")).json();
  assert.deepEqual(after.metrics, [step(3)]);
  const none = await (await app.request("/api/metrics?since=99")).json();
  assert.deepEqual(none.metrics, []);
});

Deno.test("GET /api/metrics with a malformed `since` is a 400 naming it", async () => {
  const { app } = liveApp([step(1)]);
  for (const since of ["abc", "-1", "1.5", "", "1e3", "0x10", "99999999999999999999"]) {
    const res = await app.request(`/api/metrics?since=${encodeURIComponent(since)}`);
    assert.equal(res.status, 400, `since=${since}`);
    assert.match((await res.json()).error, /since must be a step number/);
  }
});

Deno.test("GET /api/events sends the status, then one event per logged step", async () => {
  const { app, run } = liveApp([step(1)]);
  const res = await app.request("/api/events");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /^text\/event-stream/);
  const stream = events(res.body!);
  const [first] = await stream.next(1);
  assert.equal(first.event, "status");
  assert.equal((first.data as RunStatus).step, 1);
  run.record(step(2));
  run.record(step(3));
  const sent = await stream.next(2);
  assert.deepEqual(sent.map((e) => e.event), ["metrics", "metrics"]);
  const last = sent[1].data as { metrics: Metrics; status: RunStatus };
  assert.deepEqual(last.metrics, step(3));
  assert.equal(last.status.step, 3);
  await stream.reader.cancel();
});

Deno.test("a client leaving the event stream is unsubscribed", async () => {
  const { app, run } = liveApp();
  const res = await app.request("/api/events");
  assert.equal(run.subscribers, 1);
  await res.body!.cancel();
  assert.equal(run.subscribers, 0);
  run.record(step(1)); // nobody left to send to: must not throw
});

Deno.test("a client that stops reading is dropped instead of buffering without bound", async () => {
  const { app, run } = liveApp();
  const res = await app.request("/api/events");
  for (let i = 1; i <= 5000 && run.subscribers > 0; i++) run.record(step(i));
  assert.equal(run.subscribers, 0);
  await assert.rejects(res.body!.getReader().read(), /events unread/);
});

Deno.test("finishing a live run sends its final status and ends the event streams", async () => {
  const { app, run } = liveApp([step(1)]);
  const stream = events((await app.request("/api/events")).body!);
  await stream.next(1);
  run.finish();
  run.close();
  const sent = await stream.next(2);
  assert.deepEqual(sent.map((e) => e.event), ["status", "end"]);
  assert.equal((sent[0].data as RunStatus).state, "finished");
  assert.equal((await stream.reader.read()).done, true);
  assert.equal(run.subscribers, 0);
});

Deno.test("POST /api/stop without the right token is a 401 and stops nothing", async () => {
  const { app, run } = liveApp();
  for (
    const authorization of [undefined, "Bearer wrong-token", `Basic ${TOKEN}`, "Bearer", `Bearer ${TOKEN}x`]
  ) {
    const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
    const res = await app.request("/api/stop", { method: "POST", headers });
    assert.equal(res.status, 401, String(authorization));
    assert.match(res.headers.get("www-authenticate")!, /^Bearer/);
    assert.match((await res.json()).error, /token/);
  }
  assert.equal(run.signal.aborted, false);
  assert.equal((await run.status()).stop_requested, false);
});

Deno.test("POST /api/stop with the token aborts the training signal; after the run ends, 409", async () => {
  const { app, run } = liveApp();
  const stop = () =>
    app.request("/api/stop", { method: "POST", headers: { authorization: `Bearer ${TOKEN}` } });
  const res = await stop();
  assert.equal(res.status, 202);
  assert.equal((await res.json()).stopping, true);
  assert.equal(run.signal.aborted, true);
  assert.equal((await run.status()).stop_requested, true);
  assert.equal((await stop()).status, 202, "a repeated stop is accepted");
  run.finish();
  const late = await stop();
  assert.equal(late.status, 409);
  assert.match((await late.json()).error, /no longer running/);
});

Deno.test("POST /api/stop on a read-only server (a run folder) is a 409", async () => {
  await withTempDir(async (dir) => {
    const run = await FileRun.open(dir);
    try {
      for (const app of [createApp(run), createApp(run, { token: TOKEN })]) {
        const res = await app.request("/api/stop", {
          method: "POST",
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        assert.equal(res.status, 409);
        assert.match((await res.json()).error, /read-only/);
      }
    } finally {
      run.close();
    }
  });
});

Deno.test("GET / serves the dashboard, whose every asset comes from the app itself", async () => {
  const { app } = liveApp();
  const page = await app.request("/");
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type")!, /^text\/html/);
  const html = await page.text();
  assert.match(html, /<script src="dashboard\.js"><\/script>/);
  assert.match(html, /<svg id="loss-chart"/);
  const script = await app.request("/dashboard.js");
  assert.equal(script.status, 200);
  assert.match(script.headers.get("content-type")!, /^text\/javascript/);
  const js = await script.text();
  assert.match(js, /new EventSource\("api\/events"\)/);
  new Function(js); // parses
  for (const text of [html, js]) assert.doesNotMatch(text, /(src|href)=["']?(https?:)?\/\/|https?:\/\//);
});

Deno.test("unknown paths and methods get JSON 404s", async () => {
  const { app, run } = liveApp();
  for (
    const [method, path] of [["GET", "/nope"], ["GET", "/api/nope"], ["GET", "/api/stop"], [
      "DELETE",
      "/api/status",
    ]]
  ) {
    const res = await app.request(path, { method });
    assert.equal(res.status, 404, `${method} ${path}`);
    assert.match(res.headers.get("content-type")!, /^application\/json/);
    assert.equal((await res.json()).error, `not found: ${method} ${path}`);
  }
  assert.equal(run.signal.aborted, false);
});
