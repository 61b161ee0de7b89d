// Text generation over an engine session: prefill the prompt in one batch, then decode one token at
// a time with the KV cache, sampling each next token; streams text pieces as they become whole
// characters and stops at an end-of-sequence id, at max tokens or when the context is full.
import type { ModelTokenizer } from '../model/index.js';
import { isCancelled } from '../native.js';
import type { EngineModel, EngineSession } from './native-types.js';
import { SeededRng, sampleToken, validateSampling, type SamplingOptions } from './sampling.js';

export interface GenerateOptions extends SamplingOptions {
  maxTokens: number;
  seed: number;
  /** Stop at these ids (default: the tokenizer's eosIds). */
  stopIds?: number[];
  /** Receives each new piece of text (and the token id that completed it). */
  onText?: (text: string, id: number) => void;
  /** Set element 0 to 1 to stop; generation then ends with stopReason 'cancelled'. */
  cancel?: Int32Array;
  /** KV-cache size; default prompt + maxTokens (capped at the model's context). */
  capacity?: number;
  /** Stop when the text contains one of these; the text ends before it (and it is never streamed). */
  stopStrings?: string[];
  /** Called once, when the first token has been sampled (time to first token). */
  onFirstToken?: () => void;
}

export interface GenerateResult {
  promptIds: number[];
  ids: number[];
  text: string;
  /** 'stop': one of the stop strings appeared (the text ends before it). */
  stopReason: 'eos' | 'stop' | 'max-tokens' | 'context-full' | 'cancelled';
  prefillSeconds: number;
  decodeSeconds: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
}

const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

export async function generate(
  engine: EngineModel,
  tokenizer: Pick<ModelTokenizer, 'decode' | 'eosIds'>,
  promptIds: number[],
  contextLength: number,
  o: GenerateOptions,
): Promise<GenerateResult> {
  if (promptIds.length === 0) throw new Error('the prompt has no tokens; give some text (or a model whose tokenizer adds BOS)');
  if (promptIds.length >= contextLength) {
    throw new Error(`the prompt has ${promptIds.length} tokens but the model's context is ${contextLength}; shorten it`);
  }
  const capacity = Math.min(o.capacity ?? promptIds.length + o.maxTokens, contextLength);
  const session = engine.createSession(Math.max(capacity, promptIds.length + 1));
  return generateOn(session, tokenizer, promptIds, promptIds, o);
}

/**
 * Generation on an existing session: feeds `newIds` at the session's position (its cache already
 * holds what came before), then samples. `contextIds` are the ids the text continues (for decoding
 * the first word with its leading space). The session ends holding every token it was fed.
 */
export async function generateOn(
  session: EngineSession,
  tokenizer: Pick<ModelTokenizer, 'decode' | 'eosIds'>,
  newIds: number[],
  contextIds: number[],
  o: GenerateOptions,
): Promise<GenerateResult> {
  validateSampling(o);
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 0) throw new Error(`max tokens must be a whole number >= 0, got ${o.maxTokens}`);
  if (newIds.length === 0) throw new Error('nothing to feed: the prompt adds no tokens');
  if (session.position + newIds.length > session.capacity) {
    throw new Error(`the conversation needs ${session.position + newIds.length} positions but the session holds ${session.capacity}; start a new one`);
  }
  const stop = new Set(o.stopIds ?? tokenizer.eosIds);
  const rng = new SeededRng(o.seed);
  const ids: number[] = [];
  let text = '';
  let stopReason: GenerateResult['stopReason'] = 'max-tokens';
  // Decode with a few prompt tokens in front: decoders strip a leading space from a text's first
  // token, and the continuation's first word must keep its space.
  const lead = contextIds.slice(-8);
  const leadText = tokenizer.decode(lead);
  const decodeGenerated = () => {
    const both = tokenizer.decode([...lead, ...ids]);
    return both.startsWith(leadText) ? both.slice(leadText.length) : tokenizer.decode(ids);
  };
  const stops = (o.stopStrings ?? []).filter((s) => s.length > 0);
  /** Where the first stop string starts in `full`, or -1. */
  const stopAt = (full: string) => {
    let at = -1;
    for (const s of stops) {
      const i = full.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    return at;
  };
  /** The length of `full` that cannot be the start of a stop string still being written. */
  const safeLength = (full: string) => {
    let hold = 0;
    for (const s of stops) for (let k = Math.min(s.length - 1, full.length); k > hold; k--) if (full.endsWith(s.slice(0, k))) (hold = k);
    return full.length - hold;
  };
  let stoppedText: string | null = null;
  /** Streams what is new; returns true when a stop string ended the text. */
  const emit = (id: number): boolean => {
    const full = decodeGenerated();
    // Hold back an incomplete UTF-8 sequence (byte-fallback tokens decode to U+FFFD until whole).
    if (full.endsWith('\uFFFD')) return false;
    const at = stops.length ? stopAt(full) : -1;
    const shown = at >= 0 ? full.slice(0, at) : stops.length ? full.slice(0, safeLength(full)) : full;
    if (shown.length > text.length && shown.startsWith(text)) o.onText?.(shown.slice(text.length), id);
    text = shown;
    if (at >= 0) stoppedText = shown;
    return at >= 0;
  };

  let t0 = process.hrtime.bigint();
  let logits: Float32Array;
  try {
    logits = await prefill(session, newIds, o.cancel);
  } catch (err) {
    if (isCancelled(err)) return finish('cancelled', seconds(t0), 0);
    throw err;
  }
  const prefillSeconds = seconds(t0);
  t0 = process.hrtime.bigint();
  let decoded = 0;
  while (ids.length < o.maxTokens) {
    if (o.cancel && o.cancel[0] !== 0) {
      stopReason = 'cancelled';
      break;
    }
    const next = sampleToken(logits, o, rng);
    if (ids.length === 0) o.onFirstToken?.();
    if (stop.has(next)) {
      stopReason = 'eos';
      break;
    }
    ids.push(next);
    // Streaming decodes the whole continuation per token; without a listener only the end result is needed.
    if ((o.onText || stops.length) && emit(next)) {
      stopReason = 'stop';
      break;
    }
    if (ids.length >= o.maxTokens) break;
    if (session.position >= session.capacity) {
      stopReason = 'context-full';
      break;
    }
    try {
      logits = await session.forward(Int32Array.of(next), false, undefined, o.cancel);
    } catch (err) {
      if (isCancelled(err)) {
        stopReason = 'cancelled';
        break;
      }
      throw err;
    }
    decoded++;
  }
  return finish(stopReason, prefillSeconds, seconds(t0), decoded);

  function finish(reason: GenerateResult['stopReason'], prefill: number, decode: number, steps = 0): GenerateResult {
    let final = stoppedText ?? decodeGenerated();
    // A stop string that the last token completed (or that only the whole text shows) still cuts.
    const at = stoppedText === null && stops.length ? stopAt(final) : -1;
    if (at >= 0) (final = final.slice(0, at), (reason = 'stop'));
    if (final.length > text.length && final.startsWith(text) && ids.length) o.onText?.(final.slice(text.length), ids[ids.length - 1]);
    return {
      promptIds: newIds,
      ids,
      text: final,
      stopReason: reason,
      prefillSeconds: prefill,
      decodeSeconds: decode,
      prefillTokensPerSecond: prefill > 0 ? newIds.length / prefill : 0,
      decodeTokensPerSecond: decode > 0 ? steps / decode : 0,
    };
  }
}

/**
 * Texts the model writes itself (temperature 1, no top-p cut), one per seed, each the prompt plus up
 * to maxTokens sampled tokens on one line: in-domain text for a model whose training text is not at
 * hand (stories260k's quality tests and table).
 */
export async function sampleTexts(
  engine: EngineModel,
  tokenizer: Pick<ModelTokenizer, 'encode' | 'decode' | 'eosIds'>,
  contextLength: number,
  prompt: string,
  seeds: number[],
  maxTokens: number,
): Promise<string[]> {
  const out: string[] = [];
  for (const seed of seeds) {
    const r = await generate(engine, tokenizer, tokenizer.encode(prompt), contextLength, { maxTokens, seed, temperature: 1, topP: 1 });
    out.push((prompt + r.text).replace(/\n/g, ' '));
  }
  return out;
}

/** Prompt tokens fed per native forward call while prefilling. The native forward checks the cancel
 * flag between layers, so this bounds how long a stop waits (a 6,000-token prompt in one call kept a
 * stop waiting for seconds) while staying wide enough for the batched GEMM kernels. */
export const PREFILL_CHUNK = 256;

/** Feeds `ids` in chunks of PREFILL_CHUNK; the logits of the last token. */
async function prefill(session: EngineSession, ids: number[], cancel?: Int32Array): Promise<Float32Array> {
  let logits: Float32Array | null = null;
  for (let at = 0; at < ids.length; at += PREFILL_CHUNK) {
    logits = await session.forward(Int32Array.from(ids.slice(at, at + PREFILL_CHUNK)), false, undefined, cancel, true);
  }
  return logits!;
}
