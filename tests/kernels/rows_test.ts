import assert from "node:assert/strict";
import { createView, getGpu, GpuError, rowChunks, rowView } from "@inheritune/kernels";
import { assertThrows } from "../_assert.ts";

Deno.test("rowChunks splits a table at aligned rows no larger than maxRows; rowView addresses a chunk", async () => {
  const gpu = await getGpu();
  const align = gpu.limits.minStorageBufferOffsetAlignment / 4; // elements
  const cols = align; // one row per alignment step
  const table = createView(gpu, 10 * cols);
  assert.deepEqual(rowChunks(gpu, table, { rows: 10, cols }), [{ row0: 0, rows: 10 }], "fits one binding");
  const chunks = rowChunks(gpu, table, { rows: 10, cols, maxRows: 4 });
  assert.deepEqual(chunks, [{ row0: 0, rows: 4 }, { row0: 4, rows: 4 }, { row0: 8, rows: 2 }]);
  const last = rowView(table, cols, chunks[2]);
  assert.equal(last.offset, 8 * cols);
  assert.equal(last.length, 2 * cols);
  // Rows of 4 bytes start on an aligned offset only every `align` rows: maxRows 3 has no such step.
  const e = assertThrows(() => rowChunks(gpu, table, { rows: 10, cols: 1, maxRows: 3 }), /aligned chunks/);
  assert.ok(e instanceof GpuError);
});
