import { expect, it } from 'vitest';
import { baseName, formatCompact } from './format';

it('formats counts and names for people', () => {
  expect(formatCompact(260_032)).toBe('260 k');
  expect(formatCompact(1_234)).toBe('1.23 k');
  expect(formatCompact(134_515_008)).toBe('135 M');
  expect(formatCompact(999)).toBe('999');
  expect(baseName('/a/b/stories260k/')).toBe('stories260k');
  expect(baseName('C:\\models\\llama')).toBe('llama');
});
