// float32 -> IEEE binary16 with round-to-nearest-even (the same rule as native/src/common/half.h),
// for storing 16-bit tensors (unquantized tensors of a quantized model, synthetic models, GGUF export).
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function f32ToF16Bits(v: number): number {
  f32[0] = v;
  const u = u32[0];
  const sign = (u >>> 16) & 0x8000;
  let abs = u & 0x7fffffff;
  if (abs > 0x7f800000) return sign | 0x7e00; // NaN
  if (abs >= 0x477ff000) return sign | 0x7c00; // overflow -> inf
  if (abs < 0x38800000) {
    // subnormal or zero: adding 0.5 (2^-1) aligns the binary point so the float32 mantissa rounds
    // (to nearest even) exactly as binary16's subnormal spacing 2^-24 needs
    u32[0] = abs;
    f32[0] = Math.fround(f32[0] + 0.5);
    return sign | ((u32[0] - 0x3f000000) >>> 0);
  }
  const mantOdd = (abs >>> 13) & 1;
  abs = (abs + 0xc8000fff + mantOdd) >>> 0;
  return sign | (abs >>> 13);
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 31) return man ? NaN : sign * Infinity;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

/** The largest finite binary16 value; bigger float32 values would become infinity. */
export const F16_MAX = 65504;

export function f32ArrayToF16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]);
  return out;
}
