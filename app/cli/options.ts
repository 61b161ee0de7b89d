// Parsers of the command line's numeric flags, shared by every command and bench. A bad value is a
// UserError naming the flag, e.g. `--ctx must be a whole number >= 2, got "0"`.
import { UserError } from '../util/errors.js';

export function intOption(v: string | undefined, what: string, min = 1): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UserError(`${what} must be a whole number >= ${min}, got "${v}"`, 'BAD_SETTING');
  return n;
}

export function numberOption(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UserError(`${what} must be a number, got "${v}"`, 'BAD_SETTING');
  return n;
}
