/**
 * GPU access: acquiring a WebGPU device with the adapter's own limits, a cache of compiled
 * pipelines, buffer helpers, and the {@linkcode Recorder} that encodes a whole sequence of
 * kernels into one command buffer and submits it once.
 *
 * WebGPU forbids one buffer being bound both read-only and writable in the same dispatch, so an
 * activation lives in its own `GPUBuffer`. Tensors that no dispatch mixes that way share one:
 * {@linkcode createArena} packs a model's parameters (read together, written only by AdamW) and its
 * gradients (written together, read only by the optimizer), so that clearing, summing and updating
 * them take a few launches instead of one per tensor.
 *
 * @module
 */
import { UserError } from "@inheritune/data/errors";

/** An error a user can cause or fix (no adapter, a bad shape); printed as one line. */
export class GpuError extends UserError {
  /** Creates the error with its one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "GpuError";
  }
}

/** The limits of the device this process got, read from the adapter, never assumed. */
export interface GpuLimits {
  /** Largest byte size of one storage-buffer binding. */
  maxStorageBufferBindingSize: number;
  /** Largest byte size of one buffer. */
  maxBufferSize: number;
  /** Storage buffers one shader stage may bind. */
  maxStorageBuffersPerShaderStage: number;
  /** Bytes of workgroup (shared) memory one workgroup may use. */
  maxComputeWorkgroupStorageSize: number;
  /** Invocations in one workgroup. */
  maxComputeInvocationsPerWorkgroup: number;
  /** Workgroups along one dispatch dimension. */
  maxComputeWorkgroupsPerDimension: number;
  /** Required alignment of a storage binding's byte offset. */
  minStorageBufferOffsetAlignment: number;
  /** Largest width or height of a 2-D texture. */
  maxTextureDimension2D: number;
}

/** A WebGPU device with its limits, optional features and a pipeline cache. */
export interface Gpu {
  /** The device itself. */
  readonly device: GPUDevice;
  /** One line describing the adapter, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  readonly description: string;
  /** Whether the adapter is a software (fallback) adapter. */
  readonly isFallback: boolean;
  /** Limits granted to the device. */
  readonly limits: GpuLimits;
  /** Optional features that were present and requested. */
  readonly features: { readonly shaderF16: boolean; readonly timestampQuery: boolean };
  /** Returns the compute pipeline for `code`, compiling it on first use only. */
  pipeline(code: string): GPUComputePipeline;
}

const LIMIT_NAMES = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupsPerDimension",
  "minStorageBufferOffsetAlignment",
  "maxTextureDimension2D",
] as const;

let shared: Promise<Gpu> | undefined;

/**
 * Returns the process-wide GPU, acquiring it on first call.
 *
 * @throws {GpuError} when no WebGPU adapter is available.
 */
export function getGpu(): Promise<Gpu> {
  shared ??= acquireGpu();
  return shared;
}

/**
 * Gives the process a private `XDG_RUNTIME_DIR` when it has none (a root shell, a container, CI):
 * without one, the Wayland client library that the Vulkan and GL drivers probe for a display
 * prints "XDG_RUNTIME_DIR is invalid or not set" on stderr, twice, although compute needs no
 * display. Does nothing without permission to read and set that variable and to create the folder.
 */
function ensureRuntimeDir(): void {
  const variable = "XDG_RUNTIME_DIR";
  if (Deno.permissions.querySync({ name: "env", variable }).state !== "granted") return;
  if (Deno.env.get(variable)) return;
  const dir = `${Deno.env.get("TMPDIR") ?? "/tmp"}/inheritune-runtime-${Deno.uid() ?? "user"}`;
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    Deno.env.set(variable, dir);
  } catch {
    // No write access to the temporary folder: the drivers' lines will show, nothing else changes.
  }
}

/**
 * Acquires a new device, requesting the adapter's own limits and the optional features
 * `shader-f16` and `timestamp-query` only when the adapter has them.
 *
 * @throws {GpuError} when no WebGPU adapter is available.
 */
export async function acquireGpu(): Promise<Gpu> {
  ensureRuntimeDir();
  const adapter = typeof navigator !== "undefined" && navigator.gpu
    ? await navigator.gpu.requestAdapter({ powerPreference: "high-performance" })
    : null;
  if (!adapter) {
    throw new GpuError(
      "no WebGPU adapter found: install a GPU driver (Vulkan), or Mesa's software adapter " +
        "(apt-get install mesa-vulkan-drivers)",
    );
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMIT_NAMES) requiredLimits[name] = adapter.limits[name];
  const wanted: GPUFeatureName[] = ["shader-f16", "timestamp-query"];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const limits = {} as Record<(typeof LIMIT_NAMES)[number], number>;
  for (const name of LIMIT_NAMES) limits[name] = device.limits[name];
  const info = adapter.info;
  const cache = new Map<string, GPUComputePipeline>();
  return {
    device,
    description: info.description || `${info.vendor} ${info.architecture} ${info.device}`.trim(),
    isFallback: info.isFallbackAdapter ?? false,
    limits,
    features: {
      shaderF16: device.features.has("shader-f16"),
      timestampQuery: device.features.has("timestamp-query"),
    },
    pipeline(code: string): GPUComputePipeline {
      let p = cache.get(code);
      if (!p) {
        const label = `wgsl-${hash(code)}`;
        const module = device.createShaderModule({ code, label });
        p = watched(
          device,
          () =>
            device.createComputePipeline({ label, layout: "auto", compute: { module, entryPoint: "main" } }),
          (error) => compileError(module, code, error),
        );
        cache.set(code, p);
      }
      return p;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Validation errors
//
// WebGPU reports an invalid shader, pipeline or bind group asynchronously; unobserved, the
// kernels that use it do nothing and their outputs keep their old contents. So pipeline and bind
// group creation and submission run inside validation error scopes, and every readback first
// awaits their verdicts ({@linkcode checkErrors}). Deno's wgpu validates synchronously, so a
// scope's verdict needs no round trip to the GPU and a hot loop pays nothing for it.

interface Verdicts {
  /** The scopes popped so far, settled in the order they were pushed. */
  chain: Promise<void>;
  /** The first error found and not yet thrown. */
  first?: GpuError;
}

const verdicts = new WeakMap<GPUDevice, Verdicts>();

/**
 * Runs `create` inside a validation error scope of `device`; an error it raises is described by
 * `describe` and thrown by the next {@linkcode checkErrors}.
 */
function watched<T>(
  device: GPUDevice,
  create: () => T,
  describe: (error: GPUError) => string | Promise<string> = (error) => firstLine(error.message),
): T {
  let v = verdicts.get(device);
  if (!v) verdicts.set(device, v = { chain: Promise.resolve() });
  device.pushErrorScope("validation");
  try {
    return create();
  } finally {
    const popped = device.popErrorScope();
    // Never rejects, so that a verdict nobody awaits cannot end the process.
    v.chain = v.chain.then(async () => {
      const error = await popped;
      if (error && !v.first) v.first = new GpuError(await describe(error));
    }).catch((e) => {
      v.first ??= new GpuError(
        `cannot check GPU validation: ${firstLine(String((e as Error)?.message ?? e))}`,
      );
    });
  }
}

/**
 * Waits for the validation of the pipelines, bind groups and submissions of `gpu` so far (no
 * round trip to the GPU) and throws the first error among them, once: a WGSL error names its
 * module (`wgsl-<hash>`), the message, and the line and column with the source line. Every
 * readback calls it first, so no result of an invalid kernel reaches the CPU unreported.
 *
 * @throws {GpuError} naming the first invalid shader, pipeline, binding or submission.
 */
export async function checkErrors(gpu: Gpu): Promise<void> {
  const v = verdicts.get(gpu.device);
  if (!v) return;
  await v.chain;
  const error = v.first;
  v.first = undefined;
  if (error) throw error;
}

/** The first non-blank line of `text`, trimmed. */
function firstLine(text: string): string {
  return text.split("\n").map((l) => l.trim()).find((l) => l !== "") ?? "";
}

/**
 * The message of a pipeline that failed, naming its module: the shader's first compilation error
 * with its line, or else the pipeline's own error.
 */
async function compileError(module: GPUShaderModule, code: string, error: GPUError): Promise<string> {
  const { messages } = await module.getCompilationInfo();
  const first = messages.find((m) => m.type === "error");
  let text = firstLine(first?.message ?? error.message);
  if (!text.includes(module.label)) text = `${module.label}: ${text}`;
  if (!first) return text;
  const line = code.split("\n")[first.lineNum - 1]?.trim();
  return `${text} at line ${first.lineNum}:${first.linePos}${line ? `: ${line}` : ""}`;
}

/** A short hash of `text` (32-bit FNV-1a, hex) naming a generated kernel. */
function hash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16).padStart(8, "0");
}

/** A range of 32-bit elements inside a GPU buffer: the unit every kernel binds. */
export interface View {
  /** The buffer holding the elements. */
  readonly buffer: GPUBuffer;
  /** First element (not byte) of the range; its byte offset must meet the binding alignment. */
  readonly offset: number;
  /** Number of 32-bit elements in the range. */
  readonly length: number;
}

/** Host arrays of 32-bit elements that can be copied to a view. */
export type HostArray = Float32Array | Int32Array | Uint32Array;

const STORAGE_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

const created = new WeakMap<GPUDevice, number>();

function countCreated(gpu: Gpu, bytes: number): void {
  created.set(gpu.device, (created.get(gpu.device) ?? 0) + bytes);
}

/**
 * Bytes of the storage buffers ({@linkcode createView}) and textures ({@linkcode createTexture}) created on `gpu` so
 * far, destroyed ones included: a process's GPU memory for tensors, comparable with PyTorch's
 * `torch.cuda.max_memory_allocated()` when nothing was destroyed.
 */
export function createdBytes(gpu: Gpu): number {
  return created.get(gpu.device) ?? 0;
}

/** Creates a zero-filled storage buffer of `length` 32-bit elements and returns its view. */
export function createView(gpu: Gpu, length: number, label?: string): View {
  return createBuffer(gpu, length, { usage: STORAGE_USAGE, label });
}

/**
 * Creates a zero-filled buffer of `length` 32-bit elements that kernels bind as a uniform block,
 * filled by {@linkcode Recorder.copy} from storage views: settings every invocation reads, which a
 * CPU adapter then loads once for all lanes instead of once per lane (AdamW's step settings).
 */
export function createUniformView(gpu: Gpu, length: number, label?: string): View {
  return createBuffer(gpu, length, { usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label });
}

function createBuffer(gpu: Gpu, length: number, options: { usage: number; label?: string }): View {
  const { label } = options;
  const size = Math.max(4, Math.ceil((length * 4) / 16) * 16);
  if (size > gpu.limits.maxBufferSize) {
    throw new GpuError(
      `buffer ${label ?? ""} of ${size} bytes exceeds the device's maxBufferSize ${gpu.limits.maxBufferSize}`,
    );
  }
  const buffer = gpu.device.createBuffer({ size, usage: options.usage, label });
  countCreated(gpu, size);
  return { buffer, offset: 0, length };
}

/** Tensors packed into few buffers by {@linkcode createArena}. */
export interface Arena {
  /** One view per tensor, in the order of the lengths given. */
  readonly views: View[];
  /** One view per buffer, from its first tensor to the end of its last: what whole-arena kernels bind. */
  readonly spans: View[];
}

/**
 * Packs tensors of `lengths` elements into as few zero-filled storage buffers as the device's
 * `maxBufferSize` allows, each tensor starting on the storage-binding alignment (the padding
 * between tensors stays zero). A tensor larger than `maxBufferSize` is an error.
 *
 * @throws {GpuError} when a tensor exceeds `maxBufferSize`.
 */
export function createArena(gpu: Gpu, lengths: readonly number[], label: string): Arena {
  const align = Math.max(16, gpu.limits.minStorageBufferOffsetAlignment) / 4; // in elements
  const max = Math.floor(gpu.limits.maxBufferSize / 4);
  // Offsets of each tensor in its buffer, and where each buffer starts in `lengths`.
  const offsets: number[] = [];
  const starts: number[] = [];
  let end = 0;
  lengths.forEach((n, i) => {
    let at = Math.ceil(end / align) * align;
    if (i === 0 || at + n > max) {
      starts.push(i);
      at = 0;
    }
    if (n > max) {
      throw new GpuError(
        `${label}: a tensor of ${n * 4} bytes exceeds the device's maxBufferSize ${max * 4}`,
      );
    }
    offsets.push(at);
    end = at + n;
  });
  const views: View[] = [];
  const spans: View[] = [];
  starts.forEach((first, b) => {
    const last = (starts[b + 1] ?? lengths.length) - 1;
    const span = createView(gpu, offsets[last] + lengths[last], `${label} ${b}`);
    spans.push(span);
    for (let i = first; i <= last; i++) {
      views.push({ buffer: span.buffer, offset: offsets[i], length: lengths[i] });
    }
  });
  return { views, spans };
}

/**
 * Creates an rgba32float (or, for `shape.u32`, rgba32uint) storage texture for a `shape` table
 * (`shape.cols / 4` texels per row), for {@linkcode Recorder.copyToTexture} to fill and kernels to
 * read; its bytes count in {@linkcode createdBytes}.
 */
export function createTexture(gpu: Gpu, shape: TextureShape, label?: string): GPUTexture {
  countCreated(gpu, shape.rows * shape.cols * 4);
  return gpu.device.createTexture({
    label,
    size: [shape.cols / 4, shape.rows],
    format: shape.u32 ? "rgba32uint" : "rgba32float",
    usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST,
  });
}

/** Creates a storage buffer holding a copy of `data` (f32, i32 or u32 elements). */
export function upload(
  gpu: Gpu,
  data: HostArray,
  label?: string,
): View {
  const view = createView(gpu, data.length, label);
  write(gpu, view, data);
  return view;
}

/** Queues a write of `data` into `view` (ordered before the next submission). */
export function write(
  gpu: Gpu,
  view: View,
  data: HostArray,
): void {
  if (data.length > view.length) {
    throw new GpuError(`write of ${data.length} elements into a view of ${view.length}`);
  }
  gpu.device.queue.writeBuffer(
    view.buffer,
    view.offset * 4,
    data.buffer as ArrayBuffer,
    data.byteOffset,
    data.byteLength,
  );
}

/** Packs a kernel's uniform block: 32-bit unsigned ints and floats in declaration order. */
export class Uniforms {
  #values: number[] = [];
  #kinds: ("u32" | "f32")[] = [];
  /** Appends an unsigned 32-bit integer. */
  u32(value: number): this {
    this.#values.push(value);
    this.#kinds.push("u32");
    return this;
  }
  /** Appends a 32-bit float. */
  f32(value: number): this {
    this.#values.push(value);
    this.#kinds.push("f32");
    return this;
  }
  /** The packed bytes, padded to 16 bytes as uniform blocks require. */
  bytes(): Uint8Array<ArrayBuffer> {
    const n = Math.max(4, Math.ceil(this.#values.length / 4) * 4);
    const buf = new ArrayBuffer(n * 4);
    const dv = new DataView(buf);
    this.#values.forEach((v, i) => {
      if (this.#kinds[i] === "u32") dv.setUint32(i * 4, v, true);
      else dv.setFloat32(i * 4, v, true);
    });
    return new Uint8Array(buf);
  }
}

/** One recorded command: a kernel launch, a fill of a view with zeros, or a copy into a texture or a buffer. */
type Command =
  | {
    kind: "dispatch";
    pipeline: GPUComputePipeline;
    bindGroup: GPUBindGroup;
    groups: [number, number, number];
  }
  | { kind: "clear"; view: View }
  | { kind: "copy"; view: View; texture: GPUTexture; flat: boolean }
  | { kind: "copyBuffer"; src: View; dst: View; length: number };

/** Arguments of {@linkcode Recorder.dispatch}. */
export interface DispatchArgs {
  /**
   * WGSL source with entry point `main`; storage bindings 0..n-1 in `views` order, then the
   * `textures`, then the uniform block.
   */
  code: string;
  /** Storage buffers to bind, in binding order. */
  views: View[];
  /** Textures bound after the views (as read-only storage textures or sampled textures). */
  textures?: GPUTexture[];
  /** The uniform block, bound after the views and textures; omitted when the kernel has none. */
  uniforms?: Uniforms;
  /** Workgroups to launch along x, y, z. */
  groups: [number, number?, number?];
}

const UNIFORM_SLOT = 256;

/**
 * Records kernel launches once and replays them: {@linkcode Recorder.submit} encodes every
 * recorded dispatch into one compute pass of one command buffer. Bind groups and uniform blocks
 * are created at record time, so replaying a recorded training step allocates nothing.
 */
export class Recorder {
  /** The GPU the launches run on. */
  readonly gpu: Gpu;
  #commands: Command[] = [];
  #uniformBuffers: GPUBuffer[] = [];

  /** Creates an empty recorder for `gpu`. */
  constructor(gpu: Gpu) {
    this.gpu = gpu;
  }

  /** Number of recorded commands. */
  get length(): number {
    return this.#commands.length;
  }

  /** Records a fill of `view` with zeros (a buffer clear, no binding-size limit). */
  clear(view: View): void {
    this.#commands.push({ kind: "clear", view });
  }

  /**
   * Records a copy of `range.length` elements from `src`, starting at its element `range.from`,
   * into `dst` at its element `range.to`.
   *
   * @throws {GpuError} when either range lies outside its view.
   */
  copy(src: View, dst: View, range: { from: number; to: number; length: number }): void {
    const { from, to, length } = range;
    if (from < 0 || to < 0 || from + length > src.length || to + length > dst.length) {
      throw new GpuError(
        `copy of ${length} elements from ${from} of a view of ${src.length} to ${to} of a view of ${dst.length}`,
      );
    }
    this.#commands.push({
      kind: "copyBuffer",
      src: { buffer: src.buffer, offset: src.offset + from, length },
      dst: { buffer: dst.buffer, offset: dst.offset + to, length },
      length,
    });
  }

  /**
   * Records a copy of `view` into `texture`, an `rgba32float` texture whose rows are the view's
   * rows of `4 * width` floats, under the conditions of {@linkcode textureFits}.
   *
   * @throws {GpuError} when the view is too short, misaligned, or the rows are not copyable.
   */
  copyToTexture(view: View, texture: GPUTexture): void {
    const shape = { rows: texture.height, cols: texture.width * 4 };
    if (texture.format !== "rgba32float" || !textureFits(this.gpu, view, shape)) {
      throw new GpuError(
        `texture copy needs an rgba32float texture with rows of a multiple of 64 floats and a view ` +
          `starting 16-byte aligned; got ${texture.format}, ${shape.cols} floats per row, offset ${
            view.offset * 4
          } bytes`,
      );
    }
    requireLength(
      view,
      texture.width * 4 * texture.height,
      `texture copy (${texture.height} rows of ${texture.width * 4})`,
    );
    this.#commands.push({ kind: "copy", view, texture, flat: false });
  }

  /**
   * Records a copy of `view` into `texture` flat: its 4-float texels in order along the texture's
   * rows, whatever the rows of the table it holds, the last texture row filled as far as the view
   * goes. The texture's rows must be a multiple of 64 floats (16 texels), as WebGPU copies them.
   *
   * @throws {GpuError} when the view is empty, misaligned, not whole texels or longer than the texture.
   */
  copyFlatToTexture(view: View, texture: GPUTexture): void {
    const { width, height } = texture;
    if (
      !["rgba32float", "rgba32uint"].includes(texture.format) || width % 16 !== 0 || view.offset % 4 !== 0 ||
      view.length % 4 !== 0 ||
      view.length === 0 || view.length > width * 4 * height
    ) {
      throw new GpuError(
        `flat texture copy needs an rgba32float or rgba32uint texture with rows of a multiple of 64 ` +
          `elements and a view of ` +
          `whole texels starting 16-byte aligned, within the texture; got ${texture.format}, ${width * 4} ` +
          `floats per row, ${height} rows, a view of ${view.length} floats at offset ${
            view.offset * 4
          } bytes`,
      );
    }
    this.#commands.push({ kind: "copy", view, texture, flat: true });
  }

  /** Records one kernel launch. Validates bindings against the device limits first. */
  dispatch(args: DispatchArgs): void {
    const { gpu } = this;
    const align = gpu.limits.minStorageBufferOffsetAlignment;
    const pipeline = gpu.pipeline(args.code);
    const entries: GPUBindGroupEntry[] = args.views.map((v, i) => {
      const offset = v.offset * 4;
      const size = Math.max(4, v.length * 4);
      if (size > gpu.limits.maxStorageBufferBindingSize) {
        throw new GpuError(
          `binding ${i} of ${size} bytes exceeds maxStorageBufferBindingSize ${gpu.limits.maxStorageBufferBindingSize}`,
        );
      }
      if (offset % align !== 0) {
        throw new GpuError(`binding ${i} offset ${offset} is not a multiple of ${align} bytes`);
      }
      if (offset + size > v.buffer.size) {
        throw new GpuError(
          `binding ${i} range ${offset}+${size} exceeds its buffer of ${v.buffer.size} bytes`,
        );
      }
      return { binding: i, resource: { buffer: v.buffer, offset, size } } as GPUBindGroupEntry;
    });
    for (const texture of args.textures ?? []) {
      entries.push({ binding: entries.length, resource: texture.createView() });
    }
    if (args.uniforms) {
      const data = args.uniforms.bytes();
      const buffer = gpu.device.createBuffer({
        size: Math.max(UNIFORM_SLOT, data.byteLength),
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      gpu.device.queue.writeBuffer(buffer, 0, data);
      this.#uniformBuffers.push(buffer);
      entries.push({ binding: entries.length, resource: { buffer } });
    }
    const max = gpu.limits.maxComputeWorkgroupsPerDimension;
    const groups: [number, number, number] = [args.groups[0], args.groups[1] ?? 1, args.groups[2] ?? 1];
    if (groups.some((g) => g > max || !Number.isInteger(g) || g < 0)) {
      throw new GpuError(`workgroup count ${groups.join("x")} exceeds ${max} per dimension`);
    }
    if (groups.some((g) => g === 0)) return;
    const bindGroup = watched(
      gpu.device,
      () => gpu.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }),
    );
    this.#commands.push({ kind: "dispatch", pipeline, bindGroup, groups });
  }

  /** Encodes every recorded command into `encoder`: launches share compute passes between clears and copies. */
  encode(encoder: GPUCommandEncoder): void {
    let pass: GPUComputePassEncoder | undefined;
    for (const c of this.#commands) {
      if (c.kind !== "dispatch") {
        pass?.end();
        pass = undefined;
        if (c.kind === "clear") encoder.clearBuffer(c.view.buffer, c.view.offset * 4, c.view.length * 4);
        else if (c.kind === "copyBuffer") {
          encoder.copyBufferToBuffer(
            c.src.buffer,
            c.src.offset * 4,
            c.dst.buffer,
            c.dst.offset * 4,
            c.length * 4,
          );
        } else {
          const { width } = c.texture;
          const texels = c.flat ? c.view.length / 4 : width * c.texture.height;
          const rows = Math.floor(texels / width), rest = texels - rows * width;
          const offset = c.view.offset * 4;
          const { buffer } = c.view;
          if (rows > 0) {
            encoder.copyBufferToTexture({ buffer, offset, bytesPerRow: width * 16, rowsPerImage: rows }, {
              texture: c.texture,
            }, [width, rows]);
          }
          if (rest > 0) {
            encoder.copyBufferToTexture(
              { buffer, offset: offset + rows * width * 16, bytesPerRow: width * 16 },
              { texture: c.texture, origin: [0, rows] },
              [rest, 1],
            );
          }
        }
        continue;
      }
      pass ??= encoder.beginComputePass();
      pass.setPipeline(c.pipeline);
      pass.setBindGroup(0, c.bindGroup);
      pass.dispatchWorkgroups(c.groups[0], c.groups[1], c.groups[2]);
    }
    pass?.end();
  }

  /** Encodes every recorded launch into one command buffer and submits it, without waiting. */
  submit(): void {
    const { device } = this.gpu;
    watched(device, () => {
      const encoder = device.createCommandEncoder();
      this.encode(encoder);
      device.queue.submit([encoder.finish()]);
    });
  }

  /** Releases the uniform buffers this recorder created. */
  destroy(): void {
    for (const b of this.#uniformBuffers) b.destroy();
    this.#uniformBuffers = [];
    this.#commands = [];
  }
}

/** A row-major table stored as an rgba32float texture: `rows` rows of `cols` floats (`cols / 4` texels). */
export interface TextureShape {
  /** Rows (texture height). */
  rows: number;
  /** Floats per row, a multiple of 4 (texture width × 4). */
  cols: number;
  /** The elements are u32 (an rgba32uint texture), not f32. */
  u32?: boolean;
}

/**
 * Whether a `shape` table in `view` can be copied into a scratch texture: rows of a multiple of
 * 64 floats (WebGPU copies rows of a multiple of 256 bytes), a 16-byte aligned start, and both
 * sides within the device's texture size.
 */
export function textureFits(gpu: Gpu, view: View, shape: TextureShape): boolean {
  const max = gpu.limits.maxTextureDimension2D;
  return shape.cols % 64 === 0 && shape.cols / 4 <= max && shape.rows <= max && shape.rows > 0 &&
    view.offset % 4 === 0;
}

/**
 * Invocations per workgroup of the kernels written for CPU adapters (the texture-operand paths):
 * one SIMD group of llvmpipe's 256-bit vectors, which runs a workgroup's invocations together.
 */
export const CPU_WORKGROUP = 8;

/**
 * Invocations per workgroup of the kernels that reduce through a barrier tree in workgroup memory:
 * 256 on a GPU; one SIMD group ({@linkcode CPU_WORKGROUP}) on a CPU adapter, where llvmpipe runs
 * a workgroup's SIMD groups one after the other and switches between them at every barrier.
 */
export function reductionWorkgroup(gpu: Gpu): number {
  return gpu.isFallback ? CPU_WORKGROUP : 256;
}

/**
 * Checks that `view` holds at least `length` elements, before anything is dispatched.
 *
 * @throws {GpuError} naming `what` and both sizes otherwise.
 */
export function requireLength(view: View, length: number, what: string): void {
  if (!Number.isInteger(length) || length < 0) {
    throw new GpuError(`${what}: invalid element count ${length}`);
  }
  if (view.length < length) {
    throw new GpuError(`${what}: needs ${length} elements, buffer has ${view.length}`);
  }
}
