// The OpenAI-compatible API's request bodies (the fields the local server honours; others are
// accepted and ignored, as OpenAI's own server tolerates unknown ones), and the error shape
// {error: {message, type, code, param}} every failure answers with.
import { z } from 'zod';

const TextPart = z.object({ type: z.literal('text'), text: z.string() });

export const ApiMessage = z.object({
  // 'developer' is OpenAI's newer name for the system role.
  role: z.enum(['system', 'developer', 'user', 'assistant']),
  content: z.union([z.string(), z.array(TextPart)]).nullable(),
  name: z.string().optional(),
});

const Stop = z.union([z.string().min(1), z.array(z.string().min(1)).max(4)]).nullable().optional();

const Common = {
  model: z.string().min(1),
  stream: z.boolean().nullable().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  max_tokens: z.number().int().min(1).nullable().optional(),
  stop: Stop,
  seed: z.number().int().nullable().optional(),
  n: z.literal(1, { message: 'only n = 1 is supported' }).nullable().optional(),
};

export const ChatCompletionRequest = z.looseObject({
  ...Common,
  messages: z.array(ApiMessage).min(1),
  max_completion_tokens: z.number().int().min(1).nullable().optional(),
});
export type ChatCompletionRequest = z.infer<typeof ChatCompletionRequest>;

export const CompletionRequest = z.looseObject({
  ...Common,
  prompt: z.union([z.string(), z.array(z.string()).length(1, 'only one prompt per request is supported')]),
  echo: z.literal(false, { message: 'echo is not supported' }).nullable().optional(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

export interface ApiErrorBody {
  error: { message: string; type: string; code: string | null; param: string | null };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
  }

  body(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, code: this.code, param: this.param } };
  }
}

/** A zod failure as a 400 naming the first bad field (its path, e.g. "messages.0.role", as `param`). */
export function invalidField(err: z.ZodError): ApiError {
  const issue = err.issues[0];
  const param = issue?.path.length ? issue.path.map(String).join('.') : null;
  const message = param ? `Invalid value for '${param}': ${issue.message}` : (issue?.message ?? 'Invalid request body.');
  return new ApiError(400, message, 'invalid_request_error', issue?.code === 'unrecognized_keys' ? 'unknown_parameter' : 'invalid_value', param);
}
