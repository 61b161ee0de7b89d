// What the studio says about a model imported from a GGUF file: the importer puts it in its result
// (app/engine/gguf/import.ts), the CLI prints it and the Models page shows it.
export const LOSSY_NOTE =
  'This model was imported from a quantized GGUF file, so its weights already carry that quantization error. ' +
  'Its 16-bit form written here is the baseline every comparison in the studio uses, not the original full-precision model.';

export const UNQUANTIZED_NOTE = 'Imported from an unquantized GGUF file; converted to float16.';

/** The note of an import: the lossy note when the GGUF held quantized tensors. */
export function importNote(lossy: boolean): string {
  return lossy ? LOSSY_NOTE : UNQUANTIZED_NOTE;
}
