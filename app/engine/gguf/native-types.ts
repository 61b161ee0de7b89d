// Types of the GGUF module's native functions (native/addon/gguf_bindings.cc).
import type { MappedFile, ProgressFn } from '../native-types.js';

export interface DequantizedTensor<T extends Buffer | Float32Array> {
  /** 'f16': the float16 bits, little-endian, 2 bytes per value; 'f32': the values. */
  data: T;
  /** Values that are infinite or NaN in `data` (for f16: beyond +-65504). */
  nonFinite: number;
}

export interface GgufNative {
  /** The ggml type names ggufDequantize reads, in ggml id order. */
  ggufSupportedTypes(): string[];
  /** Dequantizes `numel` values of ggml type `type` stored at `offset` of a mapped file, off the JS thread. */
  ggufDequantize(file: MappedFile, offset: number, type: string, numel: number, out: 'f16', onProgress?: ProgressFn, cancel?: Int32Array): Promise<DequantizedTensor<Buffer>>;
  ggufDequantize(file: MappedFile, offset: number, type: string, numel: number, out: 'f32', onProgress?: ProgressFn, cancel?: Int32Array): Promise<DequantizedTensor<Float32Array>>;
}
