// How each way a job process can die reads to a person. The Node cases are also exercised end to end
// in client.test.ts; Electron's reasons and Windows' exit codes can only be checked here.
import { describe, expect, it } from 'vitest';

import { describeExit } from './exit-reasons.js';

describe('describeExit', () => {
  it.each([
    [{ code: null, signal: 'SIGKILL' }, 'KILLED', /killed from outside/],
    [{ code: null, signal: 'SIGTERM' }, 'KILLED', /SIGTERM/],
    [{ code: null, signal: 'SIGSEGV' }, 'CRASHED', /memory access fault/],
    [{ code: null, signal: 'SIGILL' }, 'CRASHED', /instruction this CPU does not support/],
    [{ code: 134, signal: null, stderrTail: 'FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory' }, 'OUT_OF_MEMORY', /ran out of memory/],
    [{ code: 1, signal: null, stderrTail: "terminate called after throwing an instance of 'std::bad_alloc'" }, 'OUT_OF_MEMORY', /ran out of memory/],
    [{ code: 70, signal: null, fatal: 'x is not a function' }, 'CRASHED', /crashed: x is not a function/],
    [{ code: 3, signal: null }, 'CRASHED', /exited with code 3/],
    [{ code: 0, signal: null }, 'CRASHED', /exited before finishing/],
    // Electron child-process-gone reasons
    [{ code: 9, signal: null, reason: 'oom' }, 'OUT_OF_MEMORY', /ran out of memory/],
    [{ code: 9, signal: null, reason: 'killed' }, 'KILLED', /killed/],
    [{ code: 11, signal: null, reason: 'crashed' }, 'CRASHED', /crashed/],
    [{ code: 1, signal: null, reason: 'launch-failed' }, 'LAUNCH_FAILED', /could not be started/],
    [{ code: 5, signal: null, fatal: 'Reached heap limit' }, 'OUT_OF_MEMORY', /ran out of memory/],
    // Windows NTSTATUS codes, as unsigned or as the signed value some APIs report
    [{ code: 0xc0000005, signal: null }, 'CRASHED', /memory access violation/],
    [{ code: 0xc0000005 | 0, signal: null }, 'CRASHED', /memory access violation/],
    [{ code: 0xc00000fd, signal: null }, 'CRASHED', /stack overflow/],
    [{ code: 0xc0000017, signal: null }, 'OUT_OF_MEMORY', /ran out of memory/],
  ] as const)('%j -> %s', (exit, code, message) => {
    const why = describeExit(exit);
    expect(why.code).toBe(code);
    expect(why.message).toMatch(message);
  });
});
