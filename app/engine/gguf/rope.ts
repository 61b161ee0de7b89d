// RoPE row order of q/k projections. Hugging Face Llama rotates "halves": within a head of d rows,
// row i pairs with row i + d/2. llama.cpp's GGUF converter reorders each head so pairs are adjacent
// (row 2i and 2i + 1): it views the head's rows as [2, d/2] and transposes to [d/2, 2]. Undoing it
// means transposing back: rotate-half row (p * d/2 + i) of a head is interleaved row (2i + p).

/** For each row of the rotate-half layout, the interleaved (GGUF) row that holds it. */
export function rotateHalfRowSources(rows: number, heads: number): Int32Array {
  if (heads < 1 || rows % heads !== 0 || (rows / heads) % 2 !== 0)
    throw new Error(`cannot undo the RoPE row order: ${rows} rows do not split into ${heads} heads of even size`);
  const headDim = rows / heads, half = headDim / 2;
  const src = new Int32Array(rows);
  for (let h = 0; h < heads; h++)
    for (let p = 0; p < 2; p++)
      for (let i = 0; i < half; i++) src[h * headDim + p * half + i] = h * headDim + 2 * i + p;
  return src;
}

/** Row `r` of the result is row `sources[r]` of `data` (rows of `rowBytes` bytes). */
export function gatherRows(data: Uint8Array, rowBytes: number, sources: Int32Array): Buffer {
  if (data.byteLength !== rowBytes * sources.length) throw new Error(`gatherRows: ${data.byteLength} bytes are not ${sources.length} rows of ${rowBytes}`);
  const out = Buffer.allocUnsafe(data.byteLength);
  for (let r = 0; r < sources.length; r++) out.set(data.subarray(sources[r] * rowBytes, (sources[r] + 1) * rowBytes), r * rowBytes);
  return out;
}
