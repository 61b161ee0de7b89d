// The addon must turn bad arguments into JS exceptions; an abort would take the job process down.
import { describe, expect, it } from 'vitest';

import { native, type TensorRef } from './native.js';

describe('native addon errors', () => {
  it('throws a JS error naming the path for a file that cannot be mapped', () => {
    expect(() => native().mapFile('/no/such/dir/model.safetensors')).toThrow(/no\/such\/dir\/model\.safetensors/);
  });

  it('throws a JS error for a tensor argument that is not a tensor reference', () => {
    expect(() => native().tensorStats({ file: 1 } as unknown as TensorRef)).toThrow(/MappedFile/);
  });

  it('keeps working after those errors', async () => {
    const stats = await native().tensorStats(new Float32Array([1, -3, 2]));
    expect(stats).toMatchObject({ min: -3, max: 2, absMax: 3, nonFinite: 0 });
    expect(stats.mean).toBeCloseTo(0, 12);
  });
});
