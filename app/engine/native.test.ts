// The addon must turn bad arguments into JS exceptions; an abort would take the job process down.
// QUIP_NATIVE_PATH picks the addon in a checkout (tests, a second native build, the CLI), never in a
// packaged desktop app, whose code runs from app.asar: there only the shipped addon may load.
import { describe, expect, it } from 'vitest';

import { native, nativePathOverride, type TensorRef } from './native.js';

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

const env = { QUIP_NATIVE_PATH: '/tmp/other/Release/quip_native.node' };

describe('the native addon path override', () => {
  it('is honoured in a checkout or its dist/', () => {
    expect(nativePathOverride(env, '/home/me/quip-studio/dist/worker.mjs')).toBe(env.QUIP_NATIVE_PATH);
    expect(nativePathOverride(env, '/home/me/quip-studio/app/engine/native.ts')).toBe(env.QUIP_NATIVE_PATH);
    expect(nativePathOverride({}, '/home/me/quip-studio/dist/worker.mjs')).toBeNull();
  });

  it('is ignored in a packaged app (code inside app.asar), on every platform', () => {
    for (const file of [
      '/opt/QuIP# Studio/resources/app.asar/dist/worker.mjs',
      '/Applications/QuIP# Studio.app/Contents/Resources/app.asar/dist/worker.mjs',
      'C:\\Users\\me\\AppData\\Local\\Programs\\QuIP# Studio\\resources\\app.asar\\dist\\worker.mjs',
    ]) {
      expect(nativePathOverride(env, file), file).toBeNull();
    }
  });
});
