// For CLI tests: runs `quip <args>` in-process through commander with the given commands registered,
// returning what it printed on stdout (and silencing stderr when asked). Errors reject.
import { Command } from 'commander';
import { vi } from 'vitest';

export async function runQuip(registers: Array<(program: Command) => void>, args: string[], opts: { silenceStderr?: boolean } = {}): Promise<string> {
  const program = new Command('quip').exitOverride();
  for (const register of registers) register(program);
  let out = '';
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  const stderr = opts.silenceStderr ? vi.spyOn(process.stderr, 'write').mockImplementation(() => true) : null;
  try {
    await program.parseAsync(['node', 'quip', ...args]);
  } finally {
    stdout.mockRestore();
    stderr?.mockRestore();
  }
  return out;
}
