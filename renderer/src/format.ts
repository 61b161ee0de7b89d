// How counts and names read in the studio: counts with thousands separators or compact ("1.23 M"),
// folder names. Pure functions, shared by every screen. Sizes and times are formatted by
// app/domain/format.ts, which the command line uses too.

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** 1234567 -> "1.23 M"; counts of parameters, downloads. */
export function formatCompact(n: number): string {
  if (Math.abs(n) < 1000) return String(n);
  const units: Array<[number, string]> = [
    [1e12, 'T'],
    [1e9, 'B'],
    [1e6, 'M'],
    [1e3, 'k'],
  ];
  for (const [size, suffix] of units) {
    if (Math.abs(n) >= size) {
      const v = n / size;
      return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${suffix}`;
    }
  }
  return String(n);
}

/** The last path component of a folder, for titles ("/a/b/stories260k" -> "stories260k"). */
export function baseName(folder: string): string {
  const parts = folder.split(/[\\/]+/).filter(Boolean);
  return parts[parts.length - 1] ?? folder;
}
