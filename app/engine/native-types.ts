// Types of the addon's common functions (native/addon: CPU info, threads, memory maps, tensor stats)
// and of the values every module passes to native code. Each module's own functions are typed in its
// folder's native-types.ts; native.ts joins them into NativeAddon. Types only, importing nothing of
// the engine, so no native-types file depends on native.ts.
import type { SimdPath } from '../contract/channels.js';

export interface CpuInfo {
  summary: string;
  /** The fast-path kernels this build runs on this CPU. */
  simd: SimdPath;
  avx2: boolean;
  avx512: boolean;
  neon: boolean;
  threads: number;
}

/** A read-only memory map held by the addon; bytes are only copied by read(). */
export interface MappedFile {
  readonly size: number;
  readonly path: string;
  read(offset: number, length: number): Buffer;
  close(): void;
}

export type TensorDType = 'F32' | 'F16' | 'BF16';

/** A tensor inside a mapped file, passed to native routines without copying its data. */
export interface TensorRef {
  file: MappedFile;
  offset: number;
  dtype: TensorDType;
  shape: number[];
}

export interface TensorStats {
  min: number;
  max: number;
  mean: number;
  rms: number;
  absMax: number;
  nonFinite: number;
}

/** Progress callback (one JSON text per event) and cancellation flag (set element 0 to 1). */
export type ProgressFn = (json: string) => void;

export interface CommonNative {
  cpuInfo(): CpuInfo;
  setThreads(threads: number): number;
  mapFile(filePath: string): MappedFile;
  tensorStats(t: TensorRef | Float32Array, onProgress?: ProgressFn, cancel?: Int32Array): Promise<TensorStats>;
}
