/**
 * End to end: a real (tiny) training run with `--serve`, its dashboard in headless Chromium. The
 * chart must show points and take a new step without reloading; the stop token must stop the run
 * with a checkpoint. Skipped, saying why, where Debian's `chromium` is not installed.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { prepare } from "@inheritune/data";
import { withTempDir } from "../_util.ts";

const CHROMIUM = "/usr/bin/chromium";
const ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const SCREENSHOT = join(ROOT, "runs", "test-artifacts", "dashboard.png");
/** More steps than the test lasts: the run ends through POST /api/stop. */
const STEPS = 100_000;

const hasChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
if (!hasChromium) {
  console.log(`dashboard end-to-end test skipped: ${CHROMIUM} is absent (apt-get install -y chromium)`);
}

/** A small text with some structure to learn, as documents separated the way `prepare` expects. */
function corpus(): string {
  const words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "home"];
  let s = 7;
  const next = () => (s = (s * 1103515245 + 12345) % 2 ** 31) % words.length;
  return Array.from({ length: 20 }, () => Array.from({ length: 150 }, next).map((i) => words[i]).join(" "))
    .join("<|endoftext|>");
}

/** Reads the child's stdout into `log` (so that it never blocks on a full pipe) and finds the serve line. */
function follow(
  stdout: ReadableStream<Uint8Array>,
  log: { text: string },
): Promise<{ url: string; token: string }> {
  return new Promise((resolve, reject) => {
    (async () => {
      for await (const chunk of stdout.pipeThrough(new TextDecoderStream())) {
        log.text += chunk;
        const m = /serving (http:\/\/\S+\/) \(stop: .*Bearer ([0-9a-f]+)/.exec(log.text);
        if (m) resolve({ url: m[1], token: m[2] });
      }
      reject(new Error(`training exited before serving:\n${log.text.slice(-2000)}`));
    })().catch(reject);
  });
}

function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

Deno.test({
  name: "the dashboard of `train --serve` draws the loss live in Chromium, and the stop token stops the run",
  ignore: !hasChromium,
  // playwright keeps its own pipes and timers around the browser process
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withTempDir(async (tmp) => {
      const log = { text: "" };
      let child: Deno.ChildProcess | undefined;
      let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined;
      try {
        await Deno.writeTextFile(join(tmp, "text.txt"), corpus());
        await prepare({
          inputs: [join(tmp, "text.txt")],
          out: join(tmp, "data"),
          tokenizer: "bytes",
          valFraction: 0.1,
        });
        const out = join(tmp, "run");
        child = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            "--unstable-ffi",
            "cli.ts",
            "train",
            ...["--data", join(tmp, "data"), "--out", out],
            ...["--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--ctx", "16", "--batch", "2"],
            ...["--steps", String(STEPS), "--log-every", "1", "--eval-every", "10", "--eval-tokens", "64"],
            "--serve=0",
          ],
          cwd: ROOT,
          stdout: "piped",
          stderr: "inherit",
        }).spawn();
        const { url, token } = await within(120_000, "the serve line", follow(child.stdout, log));

        browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
        const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
        await page.goto(url);
        const drawn = "Number(document.querySelector('#loss-chart polyline.train')?.dataset.points ?? 0)";
        await page.waitForFunction(`${drawn} >= 2`, undefined, { timeout: 60_000 });
        const firstStep = Number(await page.getAttribute("#step", "data-step"));
        const firstPoints = Number(await page.evaluate(drawn));
        assert.ok(firstStep >= 1 && firstPoints >= 2, `step ${firstStep}, ${firstPoints} points`);
        const coordinates = await page.getAttribute("#loss-chart polyline.train", "points");
        assert.ok(coordinates!.trim().split(" ").length >= 2, `polyline points ${coordinates}`);

        // no reload: the event stream brings the next steps
        await page.waitForFunction(
          `Number(document.getElementById('step').dataset.step) > ${firstStep + 2}`,
          undefined,
          {
            timeout: 60_000,
          },
        );
        await page.waitForFunction(
          `document.querySelectorAll('#loss-chart circle.val').length >= 1`,
          undefined,
          {
            timeout: 60_000,
          },
        );
        assert.ok(Number(await page.evaluate(drawn)) > firstPoints, "the chart grew");
        assert.equal(await page.textContent("#state"), "running");
        await Deno.mkdir(dirname(SCREENSHOT), { recursive: true });
        await page.screenshot({ path: SCREENSHOT, fullPage: true });
        console.log(`dashboard screenshot: ${SCREENSHOT}`);

        const refused = await fetch(url + "api/stop", { method: "POST" });
        assert.equal(refused.status, 401);
        await refused.body?.cancel();
        const stop = await fetch(url + "api/stop", {
          method: "POST",
          headers: { authorization: `Bearer ${token}` },
        });
        assert.equal(stop.status, 202);
        await stop.body?.cancel();
        await page.waitForFunction(`document.getElementById('state').textContent === 'finished'`, undefined, {
          timeout: 60_000,
        });
        const status = await within(60_000, "training to stop", child.status);
        assert.equal(status.code, 0, log.text.slice(-2000));
        const saved = JSON.parse(await Deno.readTextFile(join(out, "state.json"))).step;
        assert.ok(saved > firstStep && saved < STEPS, `checkpoint at step ${saved}`);
        await Deno.stat(join(out, "model.safetensors"));
        await assert.rejects(fetch(url + "api/status"), "the port is freed");
      } finally {
        await browser?.close();
        if (child !== undefined) {
          try {
            child.kill("SIGKILL");
          } catch {
            // already exited
          }
          await child.status;
        }
      }
    }),
});
