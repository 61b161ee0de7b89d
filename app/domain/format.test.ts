import { expect, it } from 'vitest';

import { formatBytes, formatDuration, formatSeconds, formatSpeed } from './format.js';

it('formats sizes in binary units with about three significant digits', () => {
  expect(formatBytes(0)).toBe('0 B');
  expect(formatBytes(1023)).toBe('1023 B');
  expect(formatBytes(1024)).toBe('1.00 KiB');
  expect(formatBytes(1_044_984)).toBe('1020 KiB'); // 1020.49
  expect(formatBytes(4_000_000)).toBe('3.81 MiB');
  expect(formatBytes(270 * 1024 ** 3)).toBe('270 GiB');
  expect(formatBytes(3 * 1024 ** 4)).toBe('3.00 TiB');
  expect(formatBytes(-1)).toBe('–');
  expect(formatBytes(Number.NaN)).toBe('–');
  expect(formatSpeed(1024 ** 2)).toBe('1.00 MiB/s');
});

it('formats seconds as one rounded unit, and durations as a clock', () => {
  expect(formatSeconds(0.421)).toBe('0.42 s');
  expect(formatSeconds(12.34)).toBe('12.3 s');
  expect(formatSeconds(89.9)).toBe('89.9 s');
  expect(formatSeconds(270)).toBe('4.5 min');
  expect(formatSeconds(7200)).toBe('2.0 h');
  expect(formatDuration(0.2)).toBe('under 1 s');
  expect(formatDuration(59.4)).toBe('59 s');
  expect(formatDuration(80)).toBe('1 min 20 s');
  expect(formatDuration(3 * 3600 + 5 * 60)).toBe('3 h 5 min');
  expect(formatDuration(-1)).toBe('–');
});
