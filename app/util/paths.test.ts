// childPath: the one way a name from outside (a run, a chat, an imported model) becomes a path in
// the studio home; it never yields anything but a direct child of its parent.
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { UserError } from './errors.js';
import { childPath } from './paths.js';

const parent = path.resolve('/home/me/.config/QuIP# Studio/runs');

describe('childPath', () => {
  it('joins one safe name under its parent', () => {
    expect(childPath(parent, 'stories-2bit', 'run id')).toBe(path.join(parent, 'stories-2bit'));
    expect(childPath(parent + '/', 'My run (2)', 'run id')).toBe(path.join(parent, 'My run (2)'));
  });

  it('throws a clear BAD_NAME error for anything that is not one name inside the parent', () => {
    const cases: Array<[string, RegExp]> = [
      ['..', /A run id can't be "\.\."/],
      ['.', /A run id can't be "\."/],
      ['', /can't be empty/],
      ['../elsewhere', /can't contain "\/"/],
      ['../../elsewhere', /can't contain "\/"/],
      ['/etc', /can't contain "\/"/],
      ['a\\..\\..', /can't contain "\/" or "\\"/],
      ['x\u0000', /control characters/],
      ['NUL', /device name on Windows/],
      ['x'.repeat(201), /at most 200 bytes/],
    ];
    for (const [segment, message] of cases) {
      let err: unknown;
      try {
        childPath(parent, segment, 'run id');
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(segment)).toBeInstanceOf(UserError);
      expect((err as UserError).code).toBe('BAD_NAME');
      expect((err as UserError).message, JSON.stringify(segment)).toMatch(message);
    }
  });
});
