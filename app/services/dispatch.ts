// The one gate every request passes in every face: the channel must exist, the input must match its
// zod schema (the error names each field as the form labels it and says what is allowed, with the
// field's path so the form marks it: contract/field-errors.ts), and the answer must match the output
// schema.
// Errors become {message, code} replies; a person sees UserError messages as they are, bugs are logged.
import { z } from 'zod';

import type { Reply } from '../contract/api.js';
import { events, requests, type EventName, type EventPayload, type ParsedInput, type RequestName, type RequestOutput } from '../contract/channels.js';
import { describeInputIssues, settingPath, type FieldProblem } from '../contract/field-errors.js';
import { SettingsError, SETTING_LABELS } from '../domain/quantize/index.js';
import { UserError } from '../util/errors.js';

/** Who is asking: a window (desktop) or a socket (browser face). Jobs remember it as their owner. */
export interface CallContext {
  client: string;
}

export type StudioHandlers = {
  [K in RequestName]: (input: ParsedInput<K>, ctx: CallContext) => Promise<RequestOutput<K>>;
};

export type Dispatch = (channel: string, input: unknown, ctx: CallContext) => Promise<Reply>;

export function createDispatcher(handlers: StudioHandlers, log: (message: string) => void = (m) => console.error(m)): Dispatch {
  return async (channel, input, ctx) => {
    if (!Object.hasOwn(requests, channel)) {
      return { ok: false, error: { message: `Unknown request "${channel}".`, code: 'UNKNOWN_CHANNEL' } };
    }
    const name = channel as RequestName;
    const spec = requests[name];
    const parsed = spec.input.safeParse(input);
    if (!parsed.success) {
      // In the form's words, field by field (the paths let the form mark each field).
      const { message, fields } = describeInputIssues(name, parsed.error);
      return { ok: false, error: { message, code: 'INVALID_INPUT', fields } };
    }
    try {
      const handler = handlers[name] as (input: unknown, ctx: CallContext) => Promise<unknown>;
      const value = await handler(parsed.data, ctx);
      const checked = spec.output.safeParse(value);
      if (!checked.success) {
        log(`studio: ${name} produced an answer outside its schema: ${z.prettifyError(checked.error)}`);
        return { ok: false, error: { message: `The studio produced an invalid answer for ${name}; this is a bug.`, code: 'INTERNAL' } };
      }
      return { ok: true, value: checked.data };
    } catch (err) {
      if (err instanceof SettingsError) {
        // A setting the domain's rules refuse: the same shape as a refused field of the input.
        const field: FieldProblem = { path: settingPath(err.field), label: SETTING_LABELS[err.field], message: err.message };
        return { ok: false, error: { message: err.message, code: err.code, fields: [field] } };
      }
      if (err instanceof UserError) return { ok: false, error: { message: err.message, code: err.code } };
      log(`studio: ${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      const message = err instanceof Error ? err.message : String(err);
      return { ok: false, error: { message, code: 'INTERNAL' } };
    }
  };
}

export type Emit = <E extends EventName>(event: E, payload: EventPayload<E>) => void;

/** Validates events before they leave, so every face sends the same, schema-true payloads. */
export function checkedEmit(send: (event: EventName, payload: unknown) => void): Emit {
  return (event, payload) => send(event, events[event].parse(payload));
}
