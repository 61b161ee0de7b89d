// Why a job process died, in words a person can act on. Node gives an exit code or a signal (and the
// stderr of V8's out-of-memory abort); Electron's child-process-gone gives a reason.

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | string | null;
  /** Electron child-process-gone details.reason: 'crashed' | 'oom' | 'killed' | 'abnormal-exit' | ... */
  reason?: string;
  /** The last few KB of the process's stderr. */
  stderrTail?: string;
  /** The message of an uncaught exception the process reported before it went. */
  fatal?: string;
}

export type ExitCode = 'CRASHED' | 'OUT_OF_MEMORY' | 'KILLED' | 'LAUNCH_FAILED';

const CRASH_SIGNALS: Record<string, string> = {
  SIGSEGV: 'a memory access fault (SIGSEGV)',
  SIGBUS: 'a bus error (SIGBUS)',
  SIGFPE: 'an arithmetic fault (SIGFPE)',
  SIGABRT: 'an abort (SIGABRT)',
  SIGTRAP: 'a trap (SIGTRAP)',
  SIGILL: 'an instruction this CPU does not support (SIGILL)',
};

// Windows NTSTATUS exit codes.
const WINDOWS_CODES: Record<number, [ExitCode, string]> = {
  0xc0000005: ['CRASHED', 'a memory access violation'],
  0xc00000fd: ['CRASHED', 'a stack overflow'],
  0xc0000409: ['CRASHED', 'a stack buffer overrun'],
  0xc000001d: ['CRASHED', 'an instruction this CPU does not support'],
  0xc0000017: ['OUT_OF_MEMORY', 'no memory left'],
  0xc000012d: ['OUT_OF_MEMORY', 'the commit limit was reached'],
};

const OOM_PATTERNS = /heap out of memory|heap limit|std::bad_alloc|Cannot allocate memory|out of memory/i;

const TAIL = 'The studio is still running; you can start the job again.';

export function describeExit(exit: ProcessExit): { code: ExitCode; message: string } {
  const oom = () => ({ code: 'OUT_OF_MEMORY' as const, message: `The job process ran out of memory. Close other programs or pick a smaller model, then try again.` });
  if (exit.reason === 'oom' || OOM_PATTERNS.test(exit.stderrTail ?? '') || OOM_PATTERNS.test(exit.fatal ?? '')) return oom();
  if (exit.reason === 'launch-failed') return { code: 'LAUNCH_FAILED', message: `The job process could not be started${exit.code ? ` (code ${exit.code})` : ''}. Reinstall the studio if this persists.` };
  if (exit.fatal) return { code: 'CRASHED', message: `The job process crashed: ${exit.fatal}. ${TAIL}` };
  if (exit.reason === 'killed' || exit.signal === 'SIGKILL' || exit.code === 137) {
    return { code: 'KILLED', message: `The job process was killed from outside the studio (on Linux the system does this when memory runs out). ${TAIL}` };
  }
  if (exit.signal === 'SIGTERM' || exit.signal === 'SIGINT' || exit.signal === 'SIGHUP') {
    return { code: 'KILLED', message: `The job process was stopped by ${exit.signal}. ${TAIL}` };
  }
  if (exit.signal && CRASH_SIGNALS[exit.signal]) return { code: 'CRASHED', message: `The job process crashed with ${CRASH_SIGNALS[exit.signal]}. ${TAIL}` };
  if (exit.code !== null && WINDOWS_CODES[exit.code >>> 0]) {
    const [code, what] = WINDOWS_CODES[exit.code >>> 0]!;
    return code === 'OUT_OF_MEMORY' ? oom() : { code, message: `The job process crashed with ${what}. ${TAIL}` };
  }
  if (exit.reason === 'crashed' || exit.reason === 'integrity-failure') return { code: 'CRASHED', message: `The job process crashed. ${TAIL}` };
  if (exit.code === 134) return { code: 'CRASHED', message: `The job process crashed with an abort. ${TAIL}` };
  if (exit.signal) return { code: 'CRASHED', message: `The job process ended on signal ${exit.signal}. ${TAIL}` };
  if (exit.code === 0) return { code: 'CRASHED', message: `The job process exited before finishing its work. ${TAIL}` };
  return { code: 'CRASHED', message: `The job process exited with code ${exit.code}. ${TAIL}` };
}
