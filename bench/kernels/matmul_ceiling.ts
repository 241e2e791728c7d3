/**
 * How fast the CPU adapter's texture matmul could get: `matmul` with texture operands (`C = A·B`,
 * 16x8 blocks) against copies of its multiply that take A, B or both from registers instead of
 * loading texels in the K loop. The register values change every step of K (one add per vec4),
 * so the compiler cannot hoist the products. The variant without loads is the ceiling of that
 * loop shape on the adapter, whatever the loads cost: it still spills the block, blends every
 * accumulator with the execution mask, and multiplies and adds separately (llvmpipe emits no FMA).
 * Each case is timed in interleaved rounds; the median and the best round are printed.
 *
 *   deno run -A bench/kernels/matmul_ceiling.ts [--size 1024] [--rounds 9]
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  copyToScratchTextures,
  CPU_WORKGROUP,
  createView,
  getGpu,
  type Gpu,
  matmul,
  Recorder,
  Uniforms,
  upload,
  type View,
} from "@inheritune/kernels";
import { Rng } from "@inheritune/data";
import { intFlag, UsageError } from "../../cli/_flags.ts";
import { runCommand } from "../../cli/_run.ts";

const R = 16; // rows of C per invocation
const C = 8; // columns of C per invocation
const XYZW = "xyzw";

/** The multiply of the texture kernel; operands not `loaded` come from registers. */
function ceilingCode(loaded: { a: boolean; b: boolean }): string {
  const pre: string[] = ["var step = vec4<f32>();"];
  const body: string[] = ["step += vec4(1e-3);"];
  const texel = (t: string, x: string, y: string) => `textureLoad(${t}, vec2<u32>(${x}, ${y}))`;
  for (let kk = 0; kk < 4; kk++) {
    for (let c = 0; c < C / 4; c++) {
      if (!loaded.b) pre.push(`let b0_${kk}_${c} = ${texel("tb", `${kk * 2 + c}u`, "l.x")};`);
      body.push(
        `let b${kk}_${c} = ${
          loaded.b ? texel("tb", `n4 + ${c}u`, `k4 * 4u + ${kk}u`) : `b0_${kk}_${c} + step`
        };`,
      );
    }
  }
  for (let r = 0; r < R; r++) {
    pre.push(`let mr${r} = min(m0 + ${r}u, p.M - 1u);`);
    if (!loaded.a) pre.push(`let a0_${r} = ${texel("ta", `${r}u`, "l.x")};`);
    body.push(`let a${r} = ${loaded.a ? texel("ta", "k4", `mr${r}`) : `a0_${r} + step`};`);
    for (let c = 0; c < C / 4; c++) {
      pre.push(`var c${r}_${c} = vec4<f32>();`);
      let e = `c${r}_${c}`;
      for (let kk = 0; kk < 4; kk++) e = `fma(vec4(a${r}.${XYZW[kk]}), b${kk}_${c}, ${e})`;
      body.push(`c${r}_${c} = ${e};`);
    }
  }
  const store: string[] = [];
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C / 4; c++) store.push(`c[(m0 + ${r}u) * (p.N / 4u) + n4 + ${c}u] = c${r}_${c};`);
  }
  return /* wgsl */ `
struct P { M: u32, N: u32, K: u32 }
@group(0) @binding(0) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(1) var ta: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var tb: texture_storage_2d<rgba32float, read>;
@group(0) @binding(3) var<uniform> p: P;

@compute @workgroup_size(${CPU_WORKGROUP})
fn main(@builtin(local_invocation_id) l: vec3<u32>, @builtin(workgroup_id) w: vec3<u32>) {
  let m0 = w.x * ${R}u;
  let n4 = (w.y * ${CPU_WORKGROUP}u + l.x) * ${C / 4}u;
  ${pre.join("\n  ")}
  for (var k4 = 0u; k4 < p.K / 4u; k4++) {
    ${body.join("\n    ")}
  }
  ${store.join("\n  ")}
}`;
}

type Launch = (rec: Recorder) => void;

/** GFLOP/s of `reps` launches submitted together and waited for once. */
async function gflops(gpu: Gpu, launch: Launch, n: number, reps: number): Promise<number> {
  const rec = new Recorder(gpu);
  for (let i = 0; i < reps; i++) launch(rec);
  const t0 = performance.now();
  rec.submit();
  await gpu.device.queue.onSubmittedWorkDone();
  const seconds = (performance.now() - t0) / 1000;
  rec.destroy();
  return (2 * n ** 3 * reps) / seconds / 1e9;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: { size: { type: "string", default: "1024" }, rounds: { type: "string", default: "9" } },
  });
  const n = intFlag(values.size, "size", { min: 64 });
  const rounds = intFlag(values.rounds, "rounds", { min: 1 });
  if (n % 64 !== 0) throw new UsageError(`--size must be a multiple of 64, got ${n}`);
  const gpu = await getGpu();
  const random = (seed: number): View => upload(gpu, new Rng(seed).normal(new Float32Array(n * n), 1));
  const [a, b, out] = [random(1), random(2), createView(gpu, n * n)];
  const variant = (loaded: { a: boolean; b: boolean }): Launch => (rec) =>
    rec.dispatch({
      code: ceilingCode(loaded),
      views: [out],
      textures: copyToScratchTextures(rec, "matmul", [
        { view: a, shape: { rows: n, cols: n } },
        { view: b, shape: { rows: n, cols: n } },
      ]),
      uniforms: new Uniforms().u32(n).u32(n).u32(n),
      groups: [n / R, n / (C * CPU_WORKGROUP)],
    });
  const cases: [string, Launch][] = [
    ["matmul (texture operands)", (rec) => matmul(rec, { out, a, b, M: n, N: n, K: n, operands: "texture" })],
    ["same loop, A from registers", variant({ a: false, b: true })],
    ["same loop, B from registers", variant({ a: true, b: false })],
    ["same loop, no loads", variant({ a: false, b: false })],
  ];
  for (const [, launch] of cases) await gflops(gpu, launch, n, 1); // compiles
  const rates: number[][] = cases.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < cases.length; i++) rates[i].push(await gflops(gpu, cases[i][1], n, 2));
  }
  console.log(`GFLOP/s at ${n}³ on ${gpu.description}, ${rounds} interleaved rounds of 2 launches\n`);
  console.log("| case | median | best |\n| --- | --- | --- |");
  cases.forEach(([name], i) => {
    const s = rates[i].sort((x, y) => x - y);
    console.log(`| ${name} | ${s[s.length >> 1].toFixed(1)} | ${s[s.length - 1].toFixed(1)} |`);
  });
}

if (import.meta.main) Deno.exit(await runCommand("matmul_ceiling", main));
