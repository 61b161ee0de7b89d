// How figures read for people, the same in the studio, the command line and job messages: sizes in
// binary units with about three significant digits ("1.00 KiB", "3.81 MiB", "270 GiB"), times as one
// rounded unit ("12.3 s", "4.5 min") or as a clock ("1 min 20 s"). Pure: the renderer imports it too.

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1023 -> "1023 B", 4_000_000 -> "3.81 MiB"; "–" for a negative or non-finite size. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '–';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${BYTE_UNITS[unit]}`;
}

/** A transfer rate: "1.00 MiB/s". */
export function formatSpeed(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** One rounded unit, for estimates and elapsed times in a line of text: "0.42 s", "12.3 s", "4.5 min", "2.0 h". */
export function formatSeconds(s: number): string {
  if (s < 1) return `${s.toFixed(2)} s`;
  if (s < 90) return `${s.toFixed(1)} s`;
  if (s < 5400) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** A clock-like duration for the studio's cards: "under 1 s", "59 s", "1 min 20 s", "3 h 5 min"; "–" if unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  if (seconds < 1) return 'under 1 s';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
