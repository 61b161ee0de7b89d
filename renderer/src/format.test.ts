import { expect, it } from 'vitest';
import { baseName, formatBytes, formatCompact, formatDuration } from './format';

it('formats sizes in binary units', () => {
  expect(formatBytes(0)).toBe('0 B');
  expect(formatBytes(1023)).toBe('1023 B');
  expect(formatBytes(1024)).toBe('1.00 KiB');
  expect(formatBytes(1_044_984)).toBe('1020 KiB'); // 1020.49
  expect(formatBytes(4_000_000)).toBe('3.81 MiB');
  expect(formatBytes(270 * 1024 ** 3)).toBe('270 GiB');
  expect(formatBytes(-1)).toBe('–');
});

it('formats counts and durations for people', () => {
  expect(formatCompact(260_032)).toBe('260 k');
  expect(formatCompact(1_234)).toBe('1.23 k');
  expect(formatCompact(134_515_008)).toBe('135 M');
  expect(formatCompact(999)).toBe('999');
  expect(formatDuration(0.2)).toBe('< 1 s');
  expect(formatDuration(59.4)).toBe('59 s');
  expect(formatDuration(80)).toBe('1 min 20 s');
  expect(formatDuration(3 * 3600 + 5 * 60)).toBe('3 h 5 min');
  expect(baseName('/a/b/stories260k/')).toBe('stories260k');
  expect(baseName('C:\\models\\llama')).toBe('llama');
});
