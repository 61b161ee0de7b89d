// GGUF import: the public surface for the studio's job process and the CLI.
export { importGguf, IMPORT_RECORD_FILE, LOSSY_NOTE, type ImportOptions, type ImportProgress, type ImportResult } from './import.js';
export { GgufError, openGguf, readGgufHeader, type GgufHeader, type GgufTensorInfo, type OpenGguf } from './reader.js';
export { SUPPORTED_ARCHITECTURES } from './architecture.js';
export { SUPPORTED_PRE_TOKENIZERS } from './tokenizer.js';
