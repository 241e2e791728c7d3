/**
 * Read-only memory maps through libc's `mmap`, reached with Deno's FFI. Returns `null` wherever
 * that is unavailable (no `--allow-ffi`, no libc, Windows) so callers fall back to positioned reads.
 *
 * `fopen`/`fileno` give the descriptor because Deno does not expose one, and because `open` is
 * variadic, which FFI calls cannot express portably.
 */

const PROT_READ = 1;
const MAP_PRIVATE = 2;
const MAP_FAILED = 0xffffffffffffffffn;

const SYMBOLS = {
  fopen: { parameters: ["buffer", "buffer"], result: "pointer" },
  fileno: { parameters: ["pointer"], result: "i32" },
  fclose: { parameters: ["pointer"], result: "i32" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (typeof Deno.dlopen !== "function" || Deno.build.os === "windows") return libc;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return libc;
  const names = Deno.build.os === "darwin"
    ? ["libSystem.B.dylib", "/usr/lib/libSystem.B.dylib"]
    : ["libc.so.6"];
  for (const name of names) {
    try {
      libc = Deno.dlopen(name, SYMBOLS).symbols;
      break;
    } catch {
      // the next candidate name, then positioned reads
    }
  }
  return libc;
}

/** Whether {@linkcode mapFile} can map files in this process. */
export function canMap(): boolean {
  return loadLibc() !== null;
}

/** A mapped file: its bytes and the call that unmaps them (after which `bytes` must not be touched). */
export interface Mapping {
  readonly bytes: Uint8Array<ArrayBuffer>;
  unmap(): void;
}

/** Maps the first `size` bytes of `path` read-only, or returns `null` if mapping is unavailable or fails. */
export function mapFile(path: string, size: number): Mapping | null {
  const c = loadLibc();
  if (!c || size <= 0) return null;
  const cstr = (s: string): Uint8Array<ArrayBuffer> => new TextEncoder().encode(s + "\0");
  const stream = c.fopen(cstr(path), cstr("rb"));
  if (stream === null) return null;
  let addr: Deno.PointerValue;
  try {
    addr = c.mmap(null, BigInt(size), PROT_READ, MAP_PRIVATE, c.fileno(stream), 0n);
  } finally {
    // The mapping keeps its own reference to the file; the descriptor is not needed any more.
    c.fclose(stream);
  }
  if (addr === null || BigInt(Deno.UnsafePointer.value(addr)) === MAP_FAILED) return null;
  const ptr = addr;
  const bytes = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(ptr, size));
  return { bytes, unmap: () => void c.munmap(ptr, BigInt(size)) };
}
