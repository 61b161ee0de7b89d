// Loads the quip_native addon (built by `npm run build:native`) and types what it exports: the common
// functions and shared value types (native-types.ts) joined with each module's interface (its folder's
// native-types.ts). Those type files never import this one.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { TrainNative } from './finetune/native-types.js';
import type { GgufNative } from './gguf/native-types.js';
import type { CommonNative } from './native-types.js';
import type { QuipNative } from './quip/native-types.js';
import type { EngineNative } from './runtime/native-types.js';
import type { QinferNative } from './runtime/qinfer-native-types.js';

export type { CpuInfo, MappedFile, ProgressFn, TensorDType, TensorRef, TensorStats } from './native-types.js';

export type NativeAddon = CommonNative & QuipNative & GgufNative & EngineNative & QinferNative & TrainNative;

const ADDON_RELATIVE = path.join('build', 'native', 'Release', 'quip_native.node');

/**
 * QUIP_NATIVE_PATH, where it may be honoured: a checkout (tests, a second native build beside the
 * first, the CLI and the browser face run from source or dist/) — never a packaged desktop app, whose
 * code is read from its app.asar (the build's onlyLoadAppFromAsar fuse). There the asar's integrity is
 * checked and the addon shipped beside it is the one that was built and signed with it; a variable
 * that any program starting the app can set must not load other native code into it.
 */
export function nativePathOverride(env: NodeJS.ProcessEnv = process.env, moduleFile: string = fileURLToPath(import.meta.url)): string | null {
  const override = env.QUIP_NATIVE_PATH;
  if (!override) return null;
  return /[\\/]app\.asar[\\/]/.test(moduleFile) ? null : override;
}

function findAddon(): string {
  const override = nativePathOverride();
  if (override) return override;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    // In a packaged app the .node file sits outside the asar archive.
    const candidate = path.join(dir.replace(/app\.asar(?!\.unpacked)/, 'app.asar.unpacked'), ADDON_RELATIVE);
    if (existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error(`The native core (${ADDON_RELATIVE}) is not built. Run \`npm run build:native\` and try again.`);
}

let cached: NativeAddon | undefined;

export function native(): NativeAddon {
  if (!cached) {
    const require = createRequire(import.meta.url);
    cached = require(findAddon()) as NativeAddon;
  }
  return cached;
}

/** A cancellation flag shared with native work: cancelFlag()[0] = 1 asks it to stop. */
export function cancelFlag(): Int32Array {
  return new Int32Array(1);
}

export function isCancelled(err: unknown): boolean {
  return (err as { code?: string })?.code === 'CANCELLED';
}
