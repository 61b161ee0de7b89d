// What any input may be, checked at the contract before a handler runs (and again where it matters):
// names and ids that become one folder or file name in the studio home, and how much text a request
// may carry. Runs in a browser too (no Node imports).
import { z } from 'zod';

// ---- names that become paths ----------------------------------------------------------------------

/** Longest name in UTF-8 bytes: a folder name stays under the usual 255-byte limit with what the
 * studio adds to it (".partial-<id>" for an unfinished run, ".json" for its record). */
export const MAX_NAME_BYTES = 200;

const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;
const NAME_HINT = 'use letters, digits, spaces, "-", "_" and "."';
/** The characters a new run's name may use (it is also the quantized model's folder name). */
export const RUN_NAME_HINT = 'use letters, digits, "-", "_" and "."';

/**
 * Why `name` cannot be one folder or file name inside a studio folder, or null when it can. The rule
 * is the strictest of the systems the studio runs on, so a name made on Linux also works on Windows:
 * not empty, not "." or "..", no "/" or "\", no control characters, none of Windows' forbidden
 * characters, no leading or trailing space or dot, not a reserved device name (CON, NUL, COM1...),
 * at most MAX_NAME_BYTES bytes. `what` names the thing for the message (e.g. "run name"), `hint`
 * says what to use instead.
 */
export function nameProblem(name: string, what: string, hint: string = NAME_HINT): string | null {
  const a = /^[aeiou]/i.test(what) ? 'An' : 'A';
  if (name === '') return `${a} ${what} can't be empty; ${hint}.`;
  if (name === '.' || name === '..') return `${a} ${what} can't be "${name}"; ${hint}.`;
  if (/[/\\]/.test(name)) return `${a} ${what} can't contain "/" or "\\" (it names one folder, not a path); ${hint}.`;
  if (/[\u0000-\u001f\u007f]/.test(name)) return `${a} ${what} can't contain control characters (tabs, line breaks, NUL); ${hint}.`;
  if (/[<>:"|?*]/.test(name)) return `${a} ${what} can't contain any of < > : " | ? * (Windows forbids them in file names); ${hint}.`;
  if (/^[ .]|[ .]$/.test(name)) return `${a} ${what} can't start or end with a space or a dot; ${hint}.`;
  if (WINDOWS_RESERVED.test(name)) return `"${name}" is a device name on Windows (CON, PRN, AUX, NUL, COM1-9, LPT1-9) and can't be ${a.toLowerCase()} ${what}.`;
  if (new TextEncoder().encode(name).length > MAX_NAME_BYTES) return `${a} ${what} can be at most ${MAX_NAME_BYTES} bytes long.`;
  return null;
}

/** A string that must be a safe single path segment (see nameProblem); one message, the first problem.
 * `extra` adds a rule of its own (e.g. the characters a run name may use). */
export function SafeName(what: string, opts: { hint?: string; extra?: (name: string) => string | null } = {}) {
  return z.string().superRefine((name, ctx) => {
    const problem = nameProblem(name, what, opts.hint) ?? opts.extra?.(name) ?? null;
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });
}

// ---- how much text a request may carry ---------------------------------------------------------

/**
 * Characters (UTF-16 units) one conversation may hold: its messages together. A reply must fit the
 * model's context, and ~4 characters make a token, so 4 Mi characters is the text of a 1M-token
 * context, the longest of today's models. Pasted text up to that goes through.
 */
export const MAX_CONVERSATION_CHARS = 4 * 1024 * 1024;
/** Messages one conversation may hold. */
export const MAX_MESSAGES = 20_000;
/** A path on any system the studio runs on (Windows long paths are 32,767 characters). */
export const MAX_PATH_CHARS = 32_767;
/** A short field: a title, a label, a revision. */
export const MAX_SHORT_CHARS = 1024;

/**
 * The largest WebSocket message the browser face accepts. The largest legitimate request is
 * chats.save of a two-pane chat, each pane a full conversation: 2 x 4 Mi characters, each at most 6
 * bytes once in JSON (a control character becomes \u00XX; any other character is at most 3 bytes of
 * UTF-8 per UTF-16 unit) = 48 MiB, plus up to 2 x 20,000 messages of ~250 bytes of structure and
 * stats (10 MiB). 64 MiB holds that; the schema bounds above keep every request inside it.
 */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** The sum of the messages' lengths is within one conversation. */
export function conversationProblem(messages: ReadonlyArray<{ content: string }>): string | null {
  let chars = 0;
  for (const m of messages) chars += m.content.length;
  return chars > MAX_CONVERSATION_CHARS
    ? `This conversation holds ${chars.toLocaleString('en-US')} characters, more than the ${MAX_CONVERSATION_CHARS.toLocaleString('en-US')} (about a 1M-token context) the studio takes; shorten it or start a new chat.`
    : null;
}
