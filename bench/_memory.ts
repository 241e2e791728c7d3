/** Memory measurements shared by the benchmarks. */

/** Peak resident memory of this process in bytes (Linux `VmHWM`), or NaN where unknown. */
export function peakMemory(): number {
  try {
    const m = Deno.readTextFileSync("/proc/self/status").match(/VmHWM:\s+(\d+) kB/);
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}
