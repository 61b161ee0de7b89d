// For CLI tests: runs `quip <args>` in-process through commander with the given commands registered,
// returning what it printed on stdout (and silencing stderr when asked). Errors reject.
import { Command } from 'commander';

export async function runQuip(registers: Array<(program: Command) => void>, args: string[], opts: { silenceStderr?: boolean } = {}): Promise<string> {
  const program = new Command('quip').exitOverride();
  for (const register of registers) register(program);
  let out = '';
  const stdoutWrite = process.stdout.write;
  const stderrWrite = process.stderr.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  if (opts.silenceStderr) process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    await program.parseAsync(['node', 'quip', ...args]);
  } finally {
    process.stdout.write = stdoutWrite;
    process.stderr.write = stderrWrite;
  }
  return out;
}
