import assert from "node:assert/strict";
import {
  arraySource,
  BatchSampler,
  DataError,
  type SamplerOptions,
  type TokenSource,
} from "@inheritune/data";
import { assertThrows } from "../_assert.ts";

/** Token i is i, so a row's first input is its window's start. */
function positions(length: number): TokenSource {
  return {
    length,
    read: (start: number, count: number): Uint32Array =>
      Uint32Array.from({ length: count }, (_, i) => start + i),
  };
}

/** Window starts of the next `batches` batches, row by row, with the epoch each batch reported. */
function take(sampler: BatchSampler, batches: number): { starts: number[]; epochs: number[] } {
  const starts: number[] = [];
  const epochs: number[] = [];
  for (let i = 0; i < batches; i++) {
    const { inputs, targets, epoch } = sampler.next();
    epochs.push(epoch);
    for (let b = 0; b < sampler.B; b++) {
      const row = inputs.subarray(b * sampler.T, (b + 1) * sampler.T);
      for (let t = 0; t < sampler.T; t++) {
        assert.equal(row[t], row[0] + t, "a row is contiguous");
        assert.equal(targets[b * sampler.T + t], row[t] + 1, "targets are inputs shifted by one");
      }
      starts.push(row[0]);
    }
  }
  return { starts, epochs };
}

Deno.test("sequential batches are llm.c's: batch i is tokens [i·B·T, i·B·T + B·T + 1)", () => {
  const tokens = Array.from({ length: 100 }, (_, i) => (i * 31) % 97);
  const sampler = new BatchSampler(arraySource(tokens), { B: 3, T: 4 });
  assert.equal(sampler.windowsPerEpoch, 24);
  for (let i = 0; i < 8; i++) {
    const { inputs, targets, epoch } = sampler.next();
    assert.equal(epoch, 0);
    const chunk = tokens.slice(i * 12, i * 12 + 13);
    assert.deepEqual([...inputs], chunk.slice(0, 12));
    assert.deepEqual([...targets], chunk.slice(1, 13));
  }
  assert.equal(sampler.next().epoch, 1);
});

const CONFIGS: [string, Omit<SamplerOptions, "B" | "T">][] = [
  ["sequential", {}],
  ["shuffled", { shuffle: true, seed: 7 }],
  ["first tokens", { subset: { firstTokens: 500 } }],
  ["seeded fraction, shuffled", { shuffle: true, seed: 3, subset: { fraction: 0.31, seed: 11 } }],
  ["fraction of first tokens", { subset: { firstTokens: 800, fraction: 0.5 } }],
];

for (const [name, options] of CONFIGS) {
  Deno.test(`${name}: every epoch covers the subset's windows exactly once`, () => {
    const T = 6;
    const B = 5;
    const sampler = new BatchSampler(positions(1000), { B, T, ...options });
    const N = sampler.windowsPerEpoch;
    const all = Math.floor(((options.subset?.firstTokens ?? 1000) - 1) / T);
    assert.equal(N, options.subset?.fraction ? Math.round(options.subset.fraction * all) : all);
    assert.notEqual(N % B, 0, "B must not divide the window count, so batches straddle epochs");
    const steps = sampler.stepsForEpochs(3);
    assert.equal(steps, Math.ceil((3 * N) / B));
    const { starts, epochs } = take(sampler, steps);
    const epochSets = [0, 1, 2].map((e) => starts.slice(e * N, (e + 1) * N));
    const first = [...epochSets[0]].sort((a, b) => a - b);
    assert.equal(new Set(first).size, N, "no window twice in an epoch");
    for (const s of first) {
      assert.equal(s % T, 0, "windows start on the stride-T grid");
      assert.ok(s + T + 1 <= (options.subset?.firstTokens ?? 1000), "windows lie within the subset");
    }
    for (const set of epochSets.slice(1)) assert.deepEqual([...set].sort((a, b) => a - b), first);
    epochs.forEach((e, i) => assert.equal(e, Math.floor((i * B) / N), `batch ${i} epoch`));
    assert.ok(Math.abs(sampler.epochProgress - (steps * B) / N) < 1e-12);
    if (options.shuffle) assert.notDeepEqual(epochSets[0], epochSets[1], "each epoch has its own order");
    else assert.deepEqual(epochSets[0], first, "sequential order ascends");
  });
}

Deno.test("subsets and shuffles are reproducible from their seeds and differ between seeds", () => {
  const windows = (options: Omit<SamplerOptions, "B" | "T">): number[] =>
    take(new BatchSampler(positions(10_000), { B: 4, T: 8, ...options }), 50).starts;
  assert.deepEqual(windows({ shuffle: true, seed: 1 }), windows({ shuffle: true, seed: 1 }));
  assert.notDeepEqual(windows({ shuffle: true, seed: 1 }), windows({ shuffle: true, seed: 2 }));
  const a = windows({ subset: { fraction: 0.1, seed: 5 } });
  assert.deepEqual(a, windows({ subset: { fraction: 0.1, seed: 5 } }));
  assert.notDeepEqual(a, windows({ subset: { fraction: 0.1, seed: 6 } }));
  // The subset's seed defaults to the sampler's seed, and the shuffle does not change which windows are in.
  const shuffled = new BatchSampler(positions(10_000), {
    B: 1,
    T: 8,
    shuffle: true,
    seed: 5,
    subset: { fraction: 0.1 },
  });
  const N = shuffled.windowsPerEpoch;
  const inSubset = take(shuffled, N).starts.sort((x, y) => x - y);
  const sequential = take(
    new BatchSampler(positions(10_000), { B: 1, T: 8, subset: { fraction: 0.1, seed: 5 } }),
    N,
  );
  assert.deepEqual(inSubset, sequential.starts);
});

Deno.test("state() and restore() resume at the exact window, even with another B", () => {
  const options: SamplerOptions = { B: 3, T: 5, shuffle: true, seed: 9, subset: { fraction: 0.4, seed: 2 } };
  const a = new BatchSampler(positions(2000), options);
  take(a, 61); // past the first epoch boundary
  const saved = JSON.parse(JSON.stringify(a.state()));
  assert.equal(saved.epoch, 1);
  const expected = take(a, 40).starts;
  const b = new BatchSampler(positions(2000), options);
  b.restore(saved);
  assert.deepEqual(take(b, 40).starts, expected);
  const c = new BatchSampler(positions(2000), { ...options, B: 1 });
  c.restore(saved);
  assert.deepEqual(take(c, 120).starts, expected);
});

Deno.test("restoring a state from other settings is a DataError", () => {
  const a = new BatchSampler(positions(2000), { B: 2, T: 5, shuffle: true, seed: 1 });
  const state = a.state();
  const cases: [SamplerOptions, RegExp][] = [
    [{ B: 2, T: 5, shuffle: true, seed: 2 }, /seed is 1 there, 2 here/],
    [{ B: 2, T: 4, shuffle: true, seed: 1 }, /windowsPerEpoch is 399 there, 499 here/],
    [{ B: 2, T: 5, seed: 1 }, /shuffle is true there, false here/],
    [{ B: 2, T: 5, shuffle: true, seed: 1, subset: { firstTokens: 2000 } }, /subset null there/],
  ];
  for (const [options, pattern] of cases) {
    const e = assertThrows(() => new BatchSampler(positions(2000), options).restore(state), pattern);
    assert.ok(e instanceof DataError);
  }
  assertThrows(() => a.restore({ ...state, offset: 399 }), /invalid position: epoch 0, offset 399/);
});

Deno.test("impossible sampler settings are DataErrors", () => {
  const cases: [number, SamplerOptions, RegExp][] = [
    [5, { B: 1, T: 5 }, /5 tokens hold no window of T \+ 1 = 6 tokens/],
    [100, { B: 0, T: 5 }, /B must be a positive integer, got 0/],
    [100, { B: 1, T: 2.5 }, /T must be a positive integer, got 2.5/],
    [100, { B: 1, T: 5, subset: { firstTokens: 101 } }, /subset\.firstTokens 101 exceeds the 100 tokens/],
    [100, { B: 1, T: 5, subset: { fraction: 0 } }, /subset\.fraction must be in \(0, 1\], got 0/],
    [100, { B: 1, T: 5, subset: { fraction: 1.5 } }, /subset\.fraction must be in \(0, 1\], got 1\.5/],
    [100, { B: 1, T: 5, subset: { fraction: 0.01 } }, /subset\.fraction 0\.01 of 19 windows selects none/],
  ];
  for (const [length, options, pattern] of cases) {
    assert.ok(assertThrows(() => new BatchSampler(positions(length), options), pattern) instanceof DataError);
  }
});
