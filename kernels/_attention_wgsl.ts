/**
 * The WGSL generators of the attention kernels, which attention.ts dispatches: forward, dq, and
 * dk/dv, each generated for one head size and split, from shared building blocks (the uniform
 * block and row addressing, rows held in named vec4 variables, streamed rows).
 *
 * @module
 */

/**
 * How one kernel splits the rows of one (b, h): `wg` invocations per workgroup, each owning `rows`
 * rows (query rows, or key rows for dk/dv), `wg · rows` rows per workgroup, streaming `step` rows
 * per loop step.
 */
export interface Split {
  /** Invocations per workgroup. */
  wg: number;
  /** Rows each invocation owns. */
  rows: number;
  /** Rows streamed per loop step. */
  step: number;
}

// The kernels are generated for one head size and split: each row an invocation owns lives in
// named vec4 variables (q0_0, q0_1, ... for row 0) and every loop over the head, the rows and the
// STEP streamed rows is unrolled. llvmpipe spills dynamically indexed private arrays through a
// slow per-lane path, while named variables stay in SIMD registers or spill as whole vectors.
// The streamed rows are read at addresses that are the same for every invocation of the
// workgroup, which a GPU serves from its cache; so there is no workgroup memory and no barrier.

/** Expression of vec4 `d` (elements 4d .. 4d+3, zero past `hs`) of the head row at `base` of `buf`. */
function load4(hs: number, buf: string, base: string, d: number): string {
  if (hs % 4 === 0) return `${buf}[(${base}) / 4u + ${d}u]`;
  const el = [0, 1, 2, 3].map((c) => (4 * d + c < hs ? `${buf}[${base} + ${4 * d + c}u]` : "0.0"));
  return `vec4<f32>(${el.join(", ")})`;
}

/** Statements storing the named row `name_0, name_1, ...` times `mul` at `base` of `buf`. */
function store4(hs: number, buf: string, base: string, name: string, mul: string): string[] {
  const lines: string[] = [];
  for (let d = 0; d < Math.ceil(hs / 4); d++) {
    if (hs % 4 === 0) {
      lines.push(`${buf}[(${base}) / 4u + ${d}u] = ${name}_${d} * ${mul};`);
      continue;
    }
    for (let c = 0; c < 4 && 4 * d + c < hs; c++) {
      lines.push(`${buf}[${base} + ${4 * d + c}u] = ${name}_${d}[${c}] * ${mul};`);
    }
  }
  return lines;
}

/** `f(0), f(1), ... f(n-1)`. */
function seq<T>(n: number, f: (i: number) => T): T[] {
  return Array.from({ length: n }, (_, i) => f(i));
}

/** Dot product of the named rows `x_0.. ` and `y_0..` of `n` vec4s, as one fma chain. */
function dot(x: string, y: string, n: number): string {
  let e = `${x}_0 * ${y}_0`;
  for (let d = 1; d < n; d++) e = `fma(${x}_${d}, ${y}_${d}, ${e})`;
  return `dot(${e}, vec4<f32>(1.0))`;
}

// Shared WGSL preamble: the uniform block and the row addressing of qkv (B,T,W) and of the
// per-row statistics (B,NH,T). Workgroup (x, y, z) = (row block, head, batch entry), the head a
// query head (forward, dq) or a key/value head (dk, dv); row r of invocation li of row block x is
// x·BLOCK + r·WG + li.
function header(
  hs: number,
  { wg, rows, step }: Split,
  bindings: [string, string][],
  textures: string[] = [],
): string {
  const arr = hs % 4 === 0 ? "array<vec4<f32>>" : "array<f32>";
  const decl = bindings.map(([access, name], i) =>
    `@group(0) @binding(${i}) var<storage, ${access}> ${name}: ${
      name === "lse" || name === "delta" ? "array<f32>" : arr
    };`
  );
  textures.forEach((name, i) =>
    decl.push(
      `@group(0) @binding(${bindings.length + i}) var ${name}: texture_storage_2d<rgba32float, read>;`,
    )
  );
  return /* wgsl */ `
const HS = ${hs}u;
const WG = ${wg}u;
const BLOCK = ${wg * rows}u;
const STEP = ${step}u;
struct P { T: u32, C: u32, NH: u32, scale: f32, NKV: u32, window: u32 }
${decl.join("\n")}
@group(0) @binding(${bindings.length + textures.length}) var<uniform> p: P;
// In-row offsets of query head h, key head g and value head g in qkv.
fn q_off(h: u32) -> u32 { return h * HS; }
fn k_off(g: u32) -> u32 { return (p.NH + g) * HS; }
fn v_off(g: u32) -> u32 { return (p.NH + p.NKV + g) * HS; }
// Element 0 of row t of batch entry b in qkv, plus an in-row offset.
fn qkv_at(b: u32, t: u32, off: u32) -> u32 { return (b * p.T + t) * (p.NH + 2u * p.NKV) * HS + off; }
// Element 0 of head h of row t of batch entry b in a (B,T,C) tensor.
fn btc_at(b: u32, t: u32, h: u32) -> u32 { return (b * p.T + t) * p.C + h * HS; }
fn stat_at(b: u32, t: u32, h: u32) -> u32 { return (b * p.NH + h) * p.T + t; }
// Whether query i attends to key j: causal, and within the last p.window positions (p.window = T
// when there is no sliding window, so that the second test always holds).
fn sees(i: u32, j: u32) -> bool { return j <= i && i < j + p.window; }
// Texel (4 floats) d at in-row offset off of row t of batch entry b in the texture copy of qkv
// (B·T rows of W/4 texels) or of a (B,T,C) tensor.
fn tex_at(b: u32, t: u32, off: u32, d: u32) -> vec2<u32> {
  return vec2<u32>(off / 4u + d, b * p.T + t);
}`;
}

/** Where a kernel streams rows from: in buffer `buf` at `base(k)`, or in texture `tex` at in-row offset `off`. */
interface StreamSource {
  tex?: string;
  off: string;
  buf: string;
  base: (k: number) => string;
}

/**
 * `let <name>k_d = ...;` for each streamed row k (row `uc_k`) and each of its `n` vec4s d: a
 * texel of `src.tex` in texture mode, else {@linkcode load4} of `src.buf`.
 */
function streamRows(sp: Split, hs: number, name: string, src: StreamSource): string[] {
  const n = Math.ceil(hs / 4);
  return seq(sp.step, (k) =>
    seq(n, (d) => {
      const v = src.tex
        ? `textureLoad(${src.tex}, tex_at(b, uc${k}, ${src.off}, ${d}u))`
        : load4(hs, src.buf, src.base(k), d);
      return `let ${name}${k}_${d} = ${v};`;
    })).flat();
}

/**
 * `let <name><r>_<d> = ...<mul>;` for vec4 d of each owned row r: in texture mode texel d of row
 * `t_r` of texture `tex` at in-row offset `off` (buffer loads go lane by lane on a CPU adapter),
 * else {@linkcode load4} of `buf` at `base(r)`.
 */
function ownedRows(
  hs: number,
  rows: number,
  name: string,
  src: { tex?: string; off: string; buf: string; base: (r: number) => string; mul?: string },
): string[] {
  return seq(rows, (r) =>
    seq(Math.ceil(hs / 4), (d) => {
      const v = src.tex
        ? `textureLoad(${src.tex}, tex_at(b, tc${r}, ${src.off}, ${d}u))`
        : load4(hs, src.buf, src.base(r), d);
      return `let ${name}${r}_${d} = ${v}${src.mul ?? ""};`;
    })).flat();
}

/** The owned query rows (query head h, row r at `qi_r`) times the scale, `q<r>_<d>`. */
function scaledQueries(hs: number, sp: Split, tex: boolean): string[] {
  const src = { tex: tex ? "tqkv" : undefined, off: "q_off(h)", buf: "qkv", mul: " * p.scale" };
  return ownedRows(hs, sp.rows, "q", { ...src, base: (r) => `qi${r}` });
}

/** The key or value rows of key/value head `g` streamed from qkv, the key row k at `kj_k`. */
function keyValueSource(tex: boolean, part: "k" | "v"): StreamSource {
  return {
    tex: tex ? "tqkv" : undefined,
    off: part === "k" ? "k_off(g)" : "v_off(g)",
    buf: "qkv",
    base: (k) => (part === "k" ? `kj${k}` : `kj${k} + V_SKIP`),
  };
}

// The entry point: `pre` runs once per invocation (rows r: t_r = its row, tc_r clamped to T-1),
// `loop` for each STEP of streamed rows s0 .. s0+STEP-1 (u_k = s0+k, uc_k clamped), `post` last.
// A kernel owns rows of query head h (forward, dq: g is its key/value head) or of key/value head g
// (dk, dv: the loop then runs once per query head h of the group, in order).
function kernel(
  sp: Split,
  owner: "query" | "keyValue",
  range: { from: string; to: string },
  code: { pre: string[]; loop: string[]; post: string[] },
): string {
  const rowLines = seq(
    sp.rows,
    (r) => `let t${r} = wid.x * BLOCK + ${r * sp.wg}u + li;\n  let tc${r} = min(t${r}, p.T - 1u);`,
  );
  const stepLines = seq(sp.step, (k) => `let u${k} = s0 + ${k}u;\n    let uc${k} = min(u${k}, p.T - 1u);`);
  // The window narrows the causal range: no key before row x·BLOCK + 1 − window is seen by the
  // block's queries, no query at or past its last row + window sees the block's keys.
  const first = "wid.x * BLOCK + 1u";
  const from = owner === "query"
    ? `max(${range.from}, select(0u, ${first} - p.window, ${first} > p.window))`
    : range.from;
  const to = owner === "keyValue" ? `min(${range.to}, (wid.x + 1u) * BLOCK - 1u + p.window)` : range.to;
  const loop = `for (var s0 = ${from}; s0 < ${to}; s0 += STEP) {
    ${stepLines.join("\n    ")}
    ${code.loop.join("\n    ")}
  }`;
  return /* wgsl */ `
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let b = wid.z;
  let GRP = p.NH / p.NKV; // query heads per key/value head
  let V_SKIP = p.NKV * HS; // from a key head to its value head in a row of qkv
  ${owner === "query" ? "let h = wid.y;\n  let g = h / GRP;" : "let g = wid.y;"}
  ${rowLines.join("\n  ")}
  ${code.pre.join("\n  ")}
  ${owner === "query" ? loop : `for (var h = g * GRP; h < (g + 1u) * GRP; h++) {\n  ${loop}\n  }`}
  ${code.post.join("\n  ")}
}`;
}

// ---------------------------------------------------------------------------------------------
// Forward

// Each invocation owns query rows t_r; keys j = u_k ≤ t_r stream STEP at a time through an online
// softmax (m_r running max, l_r running sum of exp(S − m_r), a_r unnormalised output). Keys the row
// does not see (past t_r, past T read clamped, before its window) score -3e38; m_r starts above
// that, at -1e38, so exp gives 0 for them even in steps before the row's first seen key.
/** WGSL of the forward kernel for head size `hs`, split `sp`, streaming from textures when `tex`. */
export function forwardCode(hs: number, sp: Split, tex: boolean): string {
  const n = Math.ceil(hs / 4);
  const R = seq(sp.rows, (r) => r);
  const K = seq(sp.step, (k) => k);
  const D = seq(n, (d) => d);
  const pre = [
    ...R.map((r) => `let qi${r} = qkv_at(b, tc${r}, q_off(h));`),
    ...scaledQueries(hs, sp, tex),
    ...R.flatMap((r) => D.map((d) => `var a${r}_${d} = vec4<f32>(0.0);`)),
    ...R.map((r) => `var m${r} = -1.0e38;\n  var l${r} = 0.0;`),
  ];
  const loop = [
    ...K.map((k) => `let kj${k} = qkv_at(b, uc${k}, k_off(g));`),
    ...streamRows(sp, hs, "k", keyValueSource(tex, "k")),
    ...R.flatMap((r) =>
      K.map((k) => `let s${r}_${k} = select(-3.0e38, ${dot(`q${r}`, `k${k}`, n)}, sees(t${r}, u${k}));`)
    ),
    ...R.flatMap((r) => [
      `let mt${r} = ${K.reduce((e, k) => `max(${e}, s${r}_${k})`, `m${r}`)};`,
      `let c${r} = exp(m${r} - mt${r});`,
      ...K.map((k) => `let p${r}_${k} = exp(s${r}_${k} - mt${r});`),
      `l${r} = l${r} * c${r} + ${K.map((k) => `p${r}_${k}`).join(" + ")};`,
      `m${r} = mt${r};`,
    ]),
    ...streamRows(sp, hs, "v", keyValueSource(tex, "v")),
    ...R.flatMap((r) =>
      D.map((d) =>
        `a${r}_${d} = ${
          K.reduce((e, k) => `fma(vec4<f32>(p${r}_${k}), v${k}_${d}, ${e})`, `a${r}_${d} * c${r}`)
        };`
      )
    ),
  ];
  const post = R.map((r) =>
    [
      `if (t${r} < p.T) {`,
      `  let oi = btc_at(b, t${r}, h);`,
      `  let inv = 1.0 / l${r};`,
      ...store4(hs, "out", "oi", `a${r}`, "inv").map((s) => `  ${s}`),
      `  lse[stat_at(b, t${r}, h)] = m${r} + log(l${r});`,
      `}`,
    ].join("\n  ")
  );
  // With textures, qkv is read only from its texture, so its buffer is not bound.
  return header(
    hs,
    sp,
    [["read_write", "out"], ["read_write", "lse"], ...(tex ? [] : [["read", "qkv"] as [string, string]])],
    tex ? ["tqkv"] : [],
  ) +
    kernel(sp, "query", { from: "0u", to: "min(p.T, (wid.x + 1u) * BLOCK)" }, { pre, loop, post });
}

// ---------------------------------------------------------------------------------------------
// Backward

// Each invocation owns query rows t_r: dq_r over the keys j = u_k ≤ t_r it sees. It computes
// D_r = dout_r·out_r for itself and saves it for the dk/dv kernel.
/** WGSL of the dq kernel, which also saves D = dout·out for the dk/dv kernels. */
export function dqCode(hs: number, sp: Split, tex: boolean): string {
  const n = Math.ceil(hs / 4);
  const R = seq(sp.rows, (r) => r);
  const K = seq(sp.step, (k) => k);
  const D = seq(n, (d) => d);
  const pre = [
    ...R.map((r) => `let qi${r} = qkv_at(b, tc${r}, q_off(h));\n  let oi${r} = btc_at(b, tc${r}, h);`),
    ...scaledQueries(hs, sp, tex),
    ...ownedRows(hs, sp.rows, "o", {
      tex: tex ? "tdout" : undefined,
      off: "h * HS",
      buf: "dout",
      base: (r) => `oi${r}`,
    }),
    ...R.flatMap((r) => D.map((d) => `let y${r}_${d} = ${load4(hs, "out", `oi${r}`, d)};`)),
    ...R.map((r) => `let D${r} = ${dot(`o${r}`, `y${r}`, n)};\n  let L${r} = lse[stat_at(b, tc${r}, h)];`),
    ...R.flatMap((r) => D.map((d) => `var g${r}_${d} = vec4<f32>(0.0);`)),
  ];
  const loop = [
    ...K.map((k) => `let kj${k} = qkv_at(b, uc${k}, k_off(g));`),
    ...streamRows(sp, hs, "k", keyValueSource(tex, "k")),
    ...streamRows(sp, hs, "v", keyValueSource(tex, "v")),
    ...R.flatMap((r) =>
      K.map((k) =>
        `let ds${r}_${k} = select(0.0, exp(${dot(`q${r}`, `k${k}`, n)} - L${r}) * (${
          dot(`o${r}`, `v${k}`, n)
        } - D${r}), sees(t${r}, u${k}));`
      )
    ),
    ...R.flatMap((r) =>
      D.map((d) =>
        `g${r}_${d} = ${K.reduce((e, k) => `fma(vec4<f32>(ds${r}_${k}), k${k}_${d}, ${e})`, `g${r}_${d}`)};`
      )
    ),
  ];
  const post = R.map((r) =>
    [
      `if (t${r} < p.T) {`,
      `  delta[stat_at(b, t${r}, h)] = D${r};`,
      ...store4(hs, "dqkv", `qi${r}`, `g${r}`, "p.scale").map((s) => `  ${s}`),
      `}`,
    ].join("\n  ")
  );
  // With textures, qkv and dout are read only from theirs, so their buffers are not bound.
  const bindings: [string, string][] = [
    ["read_write", "dqkv"],
    ["read_write", "delta"],
    ...(tex ? [] : [["read", "qkv"], ["read", "dout"]] as [string, string][]),
    ["read", "out"],
    ["read", "lse"],
  ];
  return header(hs, sp, bindings, tex ? ["tqkv", "tdout"] : []) +
    kernel(sp, "query", { from: "0u", to: "min(p.T, (wid.x + 1u) * BLOCK)" }, { pre, loop, post });
}

// Each invocation owns key rows t_r: dk_r and dv_r over the queries i = u_k ≥ t_r, or only one of
// them (`grads`), which needs less state: dk needs k, v and the output gradient rows, dv only k.
/**
 * WGSL of the kernel computing `grads` of the key and value rows: dk, dv or both. With `stats`,
 * lse and delta (per query row, read at every step) come from flat textures (`tlse`, `tdelta`:
 * rows of 2^shift texels) instead of buffers.
 */
export function dkvCode(
  hs: number,
  sp: Split,
  tex: boolean,
  options: { grads: "dk" | "dv" | "dkdv"; stats?: { shift: number } },
): string {
  const { grads, stats } = options;
  const n = Math.ceil(hs / 4);
  const R = seq(sp.rows, (r) => r);
  const K = seq(sp.step, (k) => k);
  const D = seq(n, (d) => d);
  const dk = grads !== "dv", dv = grads !== "dk";
  const pre = [
    ...R.map((r) => `let kj${r} = qkv_at(b, tc${r}, k_off(g));`),
    ...ownedRows(hs, sp.rows, "k", {
      tex: tex ? "tqkv" : undefined,
      off: "k_off(g)",
      buf: "qkv",
      base: (r) => `kj${r}`,
      mul: " * p.scale",
    }),
    ...(dk
      ? ownedRows(hs, sp.rows, "v", {
        tex: tex ? "tqkv" : undefined,
        off: "v_off(g)",
        buf: "qkv",
        base: (r) => `kj${r} + V_SKIP`,
      })
      : []),
    ...(dk ? R.flatMap((r) => D.map((d) => `var gk${r}_${d} = vec4<f32>(0.0);`)) : []),
    ...(dv ? R.flatMap((r) => D.map((d) => `var gv${r}_${d} = vec4<f32>(0.0);`)) : []),
  ];
  const loop = [
    ...K.map((k) =>
      `let qi${k} = qkv_at(b, uc${k}, q_off(h));\n    let oi${k} = btc_at(b, uc${k}, h);\n    let si${k} = stat_at(b, uc${k}, h);`
    ),
    ...streamRows(sp, hs, "q", {
      tex: tex ? "tqkv" : undefined,
      off: "q_off(h)",
      buf: "qkv",
      base: (k) => `qi${k}`,
    }),
    ...streamRows(sp, hs, "o", {
      tex: tex ? "tdout" : undefined,
      off: "h * HS",
      buf: "dout",
      base: (k) => `oi${k}`,
    }),
    ...K.map((k) =>
      stats
        ? `let L${k} = stat(tlse, si${k});${dk ? `\n    let D${k} = stat(tdelta, si${k});` : ""}`
        : `let L${k} = lse[si${k}];${dk ? `\n    let D${k} = delta[si${k}];` : ""}`
    ),
    ...R.flatMap((r) =>
      K.flatMap((k) => [
        `let p${r}_${k} = select(0.0, exp(${
          dot(`k${r}`, `q${k}`, n)
        } - L${k}), sees(u${k}, t${r}) && u${k} < p.T);`,
        ...(dk ? [`let ds${r}_${k} = p${r}_${k} * (${dot(`v${r}`, `o${k}`, n)} - D${k});`] : []),
      ])
    ),
    ...R.flatMap((r) =>
      D.flatMap((d) => [
        ...(dv
          ? [`gv${r}_${d} = ${
            K.reduce((e, k) => `fma(vec4<f32>(p${r}_${k}), o${k}_${d}, ${e})`, `gv${r}_${d}`)
          };`]
          : []),
        ...(dk
          ? [`gk${r}_${d} = ${
            K.reduce((e, k) => `fma(vec4<f32>(ds${r}_${k}), q${k}_${d}, ${e})`, `gk${r}_${d}`)
          };`]
          : []),
      ])
    ),
  ];
  const post = R.map((r) =>
    [
      `if (t${r} < p.T) {`,
      ...(dk ? store4(hs, "dqkv", `kj${r}`, `gk${r}`, "p.scale").map((s) => `  ${s}`) : []),
      ...(dv ? store4(hs, "dqkv", `kj${r} + V_SKIP`, `gv${r}`, "1.0").map((s) => `  ${s}`) : []),
      `}`,
    ].join("\n  ")
  );
  // With textures, qkv and dout are read only from theirs, so their buffers are not bound; dv
  // alone reads no delta.
  const bindings: [string, string][] = [
    ["read_write", "dqkv"],
    ...(tex ? [] : [["read", "qkv"], ["read", "dout"]] as [string, string][]),
    ...(stats ? [] : [["read", "lse"] as [string, string]]),
    ...(dk && !stats ? [["read", "delta"] as [string, string]] : []),
  ];
  const textures = [...(tex ? ["tqkv", "tdout"] : []), ...(stats ? ["tlse", ...(dk ? ["tdelta"] : [])] : [])];
  // Element i of a flat texture: its texel, then the component picked by arithmetic (a dynamic
  // index into a vector would go through memory on llvmpipe).
  const stat = stats
    ? /* wgsl */ `
fn stat(t: texture_storage_2d<rgba32float, read>, i: u32) -> f32 {
  let j = i >> 2u;
  let v = textureLoad(t, vec2<u32>(j & ${2 ** stats.shift - 1}u, j >> ${stats.shift}u));
  return dot(v, select(vec4<f32>(), vec4<f32>(1.0), vec4<u32>(0u, 1u, 2u, 3u) == vec4<u32>(i & 3u)));
}`
    : "";
  return header(hs, sp, bindings, textures) + stat +
    kernel(sp, "keyValue", { from: "wid.x * BLOCK", to: "p.T" }, { pre, loop, post });
}
