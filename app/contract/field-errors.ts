// Input the contract refuses, in the words of the form that sent it. Every request passes zod in the
// dispatcher (app/services/dispatch.ts); a refusal names the field as the form labels it and says
// what is allowed ("Calibration samples must be a number."), never "Invalid input for runs.estimate:
// ✖ expected number, received null → at settings.calibSamples". The reply carries each field's path
// too, so a form marks the field itself (fieldProblems). A setting refused by the domain's own rules
// (SettingsError, app/domain/quantize) arrives the same way.
import type { z } from 'zod';

import { SETTING_LABELS, type SettingField } from '../domain/quantize/index.js';
import type { RequestName } from './channels.js';

/** One refused field: its path in the request's input ("settings.calibSamples"), its label, why. */
export interface FieldProblem {
  path: string;
  label: string;
  message: string;
}

/** The settings of a run as New run labels them, at their place in runs.estimate / runs.start. */
const RUN_FIELDS: Record<string, string> = {
  modelDir: 'Model',
  name: 'Run name',
  ...Object.fromEntries(
    Object.entries(SETTING_LABELS).map(([field, label]) => [settingPath(field as SettingField), label]),
  ),
  'settings.calibTextFile': 'Calibration text file',
  'evaluation.textFile': 'Evaluation text file',
};

/** Labels by request and input path; a path not listed reads as its last part ("limit"). */
const FIELD_LABELS: Partial<Record<RequestName, Record<string, string>>> = {
  'runs.estimate': RUN_FIELDS,
  'runs.start': RUN_FIELDS,
  'models.inspect': { source: 'Model folder or repo id', revision: 'Revision' },
  'models.importGguf': { file: 'GGUF file' },
  'models.forget': { path: 'Model folder' },
  'hub.search': { query: 'Search', limit: 'Number of results' },
  'hub.download': { repoId: 'Repository', revision: 'Revision' },
  'settings.update': {
    threads: 'Threads',
    idleUnloadMinutes: 'Unload after (minutes)',
    memoryBudgetBytes: 'Memory budget',
    apiPort: 'Port',
    apiHost: 'Host',
    apiCors: 'Allowed origin',
  },
  'api.set': { port: 'Port', host: 'Host', cors: 'Allowed origin' },
  'chat.send': { modelDir: 'Model', messages: 'Messages', 'sampling.temperature': 'Temperature', 'sampling.topP': 'Top-p', 'sampling.maxTokens': 'Max tokens', 'sampling.seed': 'Seed' },
  'files.list': { dir: 'Folder' },
};

/** Where a setting of a run sits in runs.estimate's input: settings.<field>, or evaluation.<x>. */
export function settingPath(field: SettingField): string {
  return field.startsWith('evaluation.') ? field : `settings.${field}`;
}

export function fieldLabel(channel: string, path: string): string {
  const labels = FIELD_LABELS[channel as RequestName];
  if (labels?.[path]) return labels[path];
  const last = path.split('.').filter((p) => !/^\d+$/.test(p)).pop();
  return last ?? 'The input';
}

/** zod's own wording (as opposed to a message a schema gives, which is already meant for people). */
const ZOD_DEFAULT = /^(Invalid|Too (big|small)|Unrecognized|Expected)/;

const bound = (n: unknown) => (typeof n === 'number' ? n.toLocaleString('en-US') : String(n));

/** What is wrong with one field, in a sentence starting with its label. */
function sentence(label: string, issue: z.core.$ZodIssue): string {
  if (!ZOD_DEFAULT.test(issue.message)) return issue.message;
  const i = issue as z.core.$ZodIssue & { expected?: string; minimum?: unknown; maximum?: unknown; origin?: string; values?: unknown[]; keys?: string[] };
  switch (i.code) {
    case 'invalid_type':
      if (i.expected === 'number' || i.expected === 'int') return `${label} must be ${i.expected === 'int' ? 'a whole number' : 'a number'}.`;
      if (i.expected === 'string') return `${label} must be text.`;
      if (i.expected === 'boolean') return `${label} must be on or off.`;
      return `${label} is missing or of the wrong kind.`;
    case 'too_small':
      return i.origin === 'string' ? (Number(i.minimum) <= 1 ? `${label} cannot be empty.` : `${label} needs at least ${bound(i.minimum)} characters.`)
        : i.origin === 'array' ? `${label} needs at least ${bound(i.minimum)}.`
        : `${label} must be ${bound(i.minimum)} or more.`;
    case 'too_big':
      return i.origin === 'string' ? `${label} can be at most ${bound(i.maximum)} characters long.`
        : i.origin === 'array' ? `${label} can hold at most ${bound(i.maximum)}.`
        : `${label} must be ${bound(i.maximum)} or less.`;
    case 'invalid_value':
      return `${label} must be one of ${(i.values ?? []).map((v) => JSON.stringify(v)).join(', ')}.`;
    case 'unrecognized_keys':
      return `${label}: ${(i.keys ?? []).join(', ')} ${(i.keys ?? []).length === 1 ? 'is' : 'are'} not something this request takes.`;
    default:
      return `${label} is not valid.`;
  }
}

/** The refused fields of a request's input, each in the form's words. */
export function describeInputIssues(channel: string, error: z.ZodError): { message: string; fields: FieldProblem[] } {
  const fields: FieldProblem[] = [];
  for (const issue of error.issues) {
    const p = issue.path.map(String).join('.');
    const label = p ? fieldLabel(channel, p) : 'The input';
    if (fields.some((f) => f.path === p)) continue; // one problem per field is enough to fix it
    fields.push({ path: p, label, message: sentence(label, issue) });
  }
  return { message: fields.map((f) => f.message).join(' '), fields };
}

/** The refused fields a StudioError (or any error from the API) carries; {} when none. By path. */
export function fieldProblems(err: unknown): Record<string, FieldProblem> {
  const fields = (err as { fields?: unknown } | null)?.fields;
  if (!Array.isArray(fields)) return {};
  const out: Record<string, FieldProblem> = {};
  for (const f of fields as FieldProblem[]) if (f && typeof f.path === 'string') out[f.path] = f;
  return out;
}
