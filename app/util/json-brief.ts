// A short, always-safe rendering of a JSON value for error messages: values nested thousands deep
// (which make JSON.stringify overflow the stack) or megabytes long must not turn a clear error into
// a RangeError.
export function jsonBrief(v: unknown, max = 80): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(v);
  } catch {
    return Array.isArray(v) ? '(an array nested too deep to show)' : '(a value nested too deep to show)';
  }
  if (text === undefined) return String(v);
  return text.length > max ? `${text.slice(0, max)}... (${text.length} characters)` : text;
}
