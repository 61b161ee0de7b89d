// The ggml tensor types a GGUF file may name: id, block size in values and bytes. The reader needs
// every type's size (to check that tensor data lies inside the file, and to refuse unreadable types
// by name); which of them can be dequantized is the native module's list (ggufSupportedTypes()).

export interface GgmlType {
  id: number;
  name: string;
  blockValues: number;
  blockBytes: number;
}

const TYPES: GgmlType[] = [
  { id: 0, name: 'F32', blockValues: 1, blockBytes: 4 },
  { id: 1, name: 'F16', blockValues: 1, blockBytes: 2 },
  { id: 2, name: 'Q4_0', blockValues: 32, blockBytes: 18 },
  { id: 3, name: 'Q4_1', blockValues: 32, blockBytes: 20 },
  { id: 6, name: 'Q5_0', blockValues: 32, blockBytes: 22 },
  { id: 7, name: 'Q5_1', blockValues: 32, blockBytes: 24 },
  { id: 8, name: 'Q8_0', blockValues: 32, blockBytes: 34 },
  { id: 9, name: 'Q8_1', blockValues: 32, blockBytes: 36 },
  { id: 10, name: 'Q2_K', blockValues: 256, blockBytes: 84 },
  { id: 11, name: 'Q3_K', blockValues: 256, blockBytes: 110 },
  { id: 12, name: 'Q4_K', blockValues: 256, blockBytes: 144 },
  { id: 13, name: 'Q5_K', blockValues: 256, blockBytes: 176 },
  { id: 14, name: 'Q6_K', blockValues: 256, blockBytes: 210 },
  { id: 15, name: 'Q8_K', blockValues: 256, blockBytes: 292 },
  { id: 16, name: 'IQ2_XXS', blockValues: 256, blockBytes: 66 },
  { id: 17, name: 'IQ2_XS', blockValues: 256, blockBytes: 74 },
  { id: 18, name: 'IQ3_XXS', blockValues: 256, blockBytes: 98 },
  { id: 19, name: 'IQ1_S', blockValues: 256, blockBytes: 50 },
  { id: 20, name: 'IQ4_NL', blockValues: 32, blockBytes: 18 },
  { id: 21, name: 'IQ3_S', blockValues: 256, blockBytes: 110 },
  { id: 22, name: 'IQ2_S', blockValues: 256, blockBytes: 82 },
  { id: 23, name: 'IQ4_XS', blockValues: 256, blockBytes: 136 },
  { id: 24, name: 'I8', blockValues: 1, blockBytes: 1 },
  { id: 25, name: 'I16', blockValues: 1, blockBytes: 2 },
  { id: 26, name: 'I32', blockValues: 1, blockBytes: 4 },
  { id: 27, name: 'I64', blockValues: 1, blockBytes: 8 },
  { id: 28, name: 'F64', blockValues: 1, blockBytes: 8 },
  { id: 29, name: 'IQ1_M', blockValues: 256, blockBytes: 56 },
  { id: 30, name: 'BF16', blockValues: 1, blockBytes: 2 },
  { id: 34, name: 'TQ1_0', blockValues: 256, blockBytes: 54 },
  { id: 35, name: 'TQ2_0', blockValues: 256, blockBytes: 66 },
  { id: 39, name: 'MXFP4', blockValues: 32, blockBytes: 17 },
];

const BY_ID = new Map(TYPES.map((t) => [t.id, t]));
const BY_NAME = new Map(TYPES.map((t) => [t.name, t]));

export function ggmlTypeById(id: number): GgmlType | undefined {
  return BY_ID.get(id);
}

export function ggmlTypeByName(name: string): GgmlType | undefined {
  return BY_NAME.get(name);
}
