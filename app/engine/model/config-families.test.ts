// config.json of the newer families and options (issue #20): Qwen3, SmolLM3, sliding windows of
// Mistral and Qwen2/Qwen3 (use_sliding_window, max_window_layers, layer_types), rope_parameters of
// newer transformers, text_config nesting; and every option the studio does not implement refused by
// name. Expected values follow transformers' configuration classes (Qwen2Config/Qwen3Config
// __post_init__, MistralConfig, SmolLM3Config).
import { rmSync } from 'node:fs';
import path from 'node:path';

import { afterAll, expect, test } from 'vitest';

import { expectedTensorShapes, parseArchitecture } from './config.js';
import { loadModel } from './loader.js';
import { storiesCopy, storiesTensors, writeSafetensors } from '../../testing/model-files.js';

const temps: string[] = [];
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

// Qwen3-0.6B's published config.json.
const QWEN3 = {
  architectures: ['Qwen3ForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151645,
  head_dim: 128, hidden_act: 'silu', hidden_size: 1024, initializer_range: 0.02, intermediate_size: 3072, max_position_embeddings: 40960,
  max_window_layers: 28, model_type: 'qwen3', num_attention_heads: 16, num_hidden_layers: 28, num_key_value_heads: 8, rms_norm_eps: 1e-6,
  rope_scaling: null, rope_theta: 1000000, sliding_window: null, tie_word_embeddings: true, torch_dtype: 'bfloat16', use_cache: true,
  use_sliding_window: false, vocab_size: 151936,
};
const SMALL = { hidden_size: 64, intermediate_size: 172, num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 4, vocab_size: 32, max_position_embeddings: 512 };

test('Qwen3: q/k norms of head_dim, explicit head_dim (128 with hidden 1024 / 16 heads), no bias, no window', () => {
  const warnings: string[] = [];
  const a = parseArchitecture(QWEN3, warnings);
  expect(a).toMatchObject({ modelType: 'qwen3', family: 'Qwen3', headDim: 128, qkNorm: true, attentionBias: false, ropeTheta: 1e6, tiedEmbeddings: true });
  expect(a.slidingWindow).toBeUndefined();
  expect(a.slidingLayers).toBeUndefined();
  expect(warnings).toEqual([]);
  const shapes = expectedTensorShapes(a);
  expect(shapes.get('model.layers.27.self_attn.q_norm.weight')!.shape).toEqual([128]);
  expect(shapes.get('model.layers.0.self_attn.q_proj.weight')!.shape).toEqual([2048, 1024]);
  expect(shapes.has('model.layers.0.self_attn.q_proj.bias')).toBe(false);
  // transformers' Qwen3 default head_dim is 128, not hidden / heads.
  const noHead = parseArchitecture({ ...QWEN3, head_dim: undefined, hidden_size: 512 }, warnings);
  expect(noHead.headDim).toBe(128);
  expect(warnings).toEqual([expect.stringMatching(/no head_dim; 128 \(the Qwen3 default\)/)]);
});

test('sliding windows as transformers reads them: Qwen2/Qwen3 use_sliding_window + max_window_layers or layer_types', () => {
  const on = { ...QWEN3, ...SMALL, use_sliding_window: true, sliding_window: 16, max_window_layers: 2 };
  expect(parseArchitecture(on)).toMatchObject({ slidingWindow: 16, slidingLayers: [2, 3] });
  // use_sliding_window false: no window, whatever sliding_window and layer_types say.
  expect(parseArchitecture({ ...on, use_sliding_window: false }).slidingLayers).toBeUndefined();
  // max_window_layers defaults to 28 (none of 4 layers slides), sliding_window to 4096.
  expect(parseArchitecture({ ...on, max_window_layers: undefined }).slidingLayers).toBeUndefined();
  expect(parseArchitecture({ ...on, sliding_window: undefined, max_window_layers: 0 })).toMatchObject({ slidingWindow: 4096, slidingLayers: [0, 1, 2, 3] });
  // layer_types wins over max_window_layers.
  const types = ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'];
  expect(parseArchitecture({ ...on, layer_types: types })).toMatchObject({ slidingLayers: [0, 2] });
  const q2 = { ...SMALL, model_type: 'qwen2', use_sliding_window: true, sliding_window: 8, max_window_layers: 3 };
  expect(parseArchitecture(q2)).toMatchObject({ attentionBias: true, slidingWindow: 8, slidingLayers: [3] });
});

test('Mistral: sliding_window on every layer (4096 when absent, none when null); layer_types not read', () => {
  const m = { ...SMALL, model_type: 'mistral' };
  const warnings: string[] = [];
  expect(parseArchitecture({ ...m, sliding_window: 32 }, warnings)).toMatchObject({ slidingWindow: 32, slidingLayers: [0, 1, 2, 3] });
  expect(warnings).toEqual([expect.stringMatching(/sliding attention window of 32 tokens on all 4 layers: there a token attends to itself and the 31 before it/)]);
  expect(parseArchitecture(m)).toMatchObject({ slidingWindow: 4096 });
  const none = parseArchitecture({ ...m, sliding_window: null });
  expect(none.slidingWindow).toBeUndefined();
  const w2: string[] = [];
  expect(parseArchitecture({ ...m, sliding_window: 32, layer_types: ['full_attention', 'sliding_attention', 'full_attention', 'full_attention'] }, w2).slidingLayers).toEqual([0, 1, 2, 3]);
  expect(w2.join('\n')).toMatch(/layer_types, which Mistral models do not read/);
  // Llama has no sliding window: the field is noted and not used.
  const w3: string[] = [];
  expect(parseArchitecture({ ...SMALL, model_type: 'llama', sliding_window: 32 }, w3).slidingLayers).toBeUndefined();
  expect(w3.join('\n')).toMatch(/sliding_window 32, which Llama models do not use/);
});

test('SmolLM3: no RoPE where no_rope_layers is 0 (default every 4th layer), windows on those layers, tied and theta 2e6 by default', () => {
  const s = { ...SMALL, num_hidden_layers: 8, model_type: 'smollm3' };
  const a = parseArchitecture(s);
  expect(a).toMatchObject({ family: 'SmolLM3', noRopeLayers: [3, 7], tiedEmbeddings: true, ropeTheta: 2_000_000, attentionBias: false });
  expect(a.qkNorm).toBeUndefined();
  expect(parseArchitecture({ ...s, no_rope_layers: [1, 0, 1, 1, 1, 1, 1, 0] }).noRopeLayers).toEqual([1, 7]);
  expect(parseArchitecture({ ...s, no_rope_layer_interval: 2 }).noRopeLayers).toEqual([1, 3, 5, 7]);
  expect(parseArchitecture({ ...s, no_rope_layers: [1, 1, 1, 1, 1, 1, 1, 1] }).noRopeLayers).toBeUndefined();
  expect(parseArchitecture({ ...s, use_sliding_window: true, sliding_window: 64 })).toMatchObject({ slidingWindow: 64, slidingLayers: [3, 7] });
  expect(() => parseArchitecture({ ...s, no_rope_layers: [1, 1, 2, 1, 1, 1, 1, 1] })).toThrow(/no_rope_layers must list 1 \(RoPE\) or 0 \(no RoPE\)/);
});

test('rope_parameters (newer transformers) as well as rope_theta / rope_scaling', () => {
  const base = { ...SMALL, model_type: 'llama' };
  expect(parseArchitecture({ ...base, rope_parameters: { rope_type: 'default', rope_theta: 500000 } })).toMatchObject({ ropeTheta: 500000, ropeScaling: null });
  const l3 = { rope_type: 'llama3', rope_theta: 500000, factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
  expect(parseArchitecture({ ...base, rope_theta: 1, rope_parameters: l3 })).toMatchObject({
    ropeTheta: 500000, ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
  });
  // rope_theta outside rope_parameters still counts; no rope_type means default.
  expect(parseArchitecture({ ...base, rope_theta: 1234, rope_parameters: {} }).ropeTheta).toBe(1234);
  // One set per layer type: equal sets are one RoPE.
  const same = { full_attention: { rope_type: 'default', rope_theta: 1e6 }, sliding_attention: { rope_type: 'default', rope_theta: 1e6 } };
  expect(parseArchitecture({ ...base, rope_parameters: same }).ropeTheta).toBe(1e6);
  expect(() => parseArchitecture({ ...base, rope_parameters: { ...same, sliding_attention: { rope_type: 'default', rope_theta: 1e4 } } })).toThrow(/rope_parameters differ by layer type .*not supported/);
  expect(() => parseArchitecture({ ...base, rope_parameters: { rope_type: 'longrope', rope_theta: 1e4, factor: 4 } })).toThrow(/rope_parameters type "longrope" is not supported; the studio supports linear, llama3, dynamic/);
  expect(() => parseArchitecture({ ...base, rope_parameters: { rope_type: 'yarn', factor: 4 } })).toThrow(/rope_parameters type "yarn" is not supported/);
  expect(() => parseArchitecture({ ...base, rope_parameters: { rope_theta: 1e4, partial_rotary_factor: 0.5 } })).toThrow(/partial_rotary_factor is 0.5; partial rotary embeddings are not supported/);
});

test('text_config nesting: the language model inside a multimodal config', () => {
  const warnings: string[] = [];
  const a = parseArchitecture({ model_type: 'some_vlm', torch_dtype: 'bfloat16', text_config: { ...QWEN3, torch_dtype: undefined } }, warnings);
  expect(a).toMatchObject({ modelType: 'qwen3', torchDtype: 'bfloat16', qkNorm: true });
  expect(warnings).toEqual([expect.stringMatching(/nests the language model in text_config; the studio reads that and runs the text model only/)]);
  expect(() => parseArchitecture({ model_type: 'gemma3', text_config: { model_type: 'gemma3_text' } })).toThrow(/model_type "gemma3_text" \(the text_config of model_type "gemma3"\) is not supported/);
});

test('options the studio does not implement are named and refused', () => {
  const q3 = { ...QWEN3, ...SMALL };
  const refused: Array<[Record<string, unknown>, RegExp]> = [
    [{ ...q3, num_experts: 8 }, /num_experts is 8: a mixture of experts/],
    [{ ...SMALL, model_type: 'mistral', num_local_experts: 8 }, /num_local_experts is 8: a mixture of experts/],
    [{ ...SMALL, model_type: 'llama', alibi: true }, /ALiBi position biases \(alibi\)/],
    [{ ...SMALL, model_type: 'llama', position_embedding_type: 'alibi' }, /ALiBi/],
    [{ ...q3, use_attention_sinks: true }, /use_attention_sinks is true: attention sinks are not supported/],
    [{ ...q3, layer_types: ['full_attention', 'chunked_attention', 'full_attention', 'full_attention'] }, /layer_types holds "chunked_attention"/],
    [{ ...q3, layer_types: ['full_attention'] }, /layer_types must list one type per layer \(4\)/],
    [{ ...SMALL, model_type: 'llama', attn_logit_softcapping: 50 }, /attn_logit_softcapping is 50.*not supported/],
    [{ ...SMALL, model_type: 'mistral', final_logit_softcapping: 30 }, /final_logit_softcapping is 30/],
    [{ ...SMALL, model_type: 'llama', query_pre_attn_scalar: 256 }, /query_pre_attn_scalar is 256/],
    [{ ...SMALL, model_type: 'llama', attention_chunk_size: 8192 }, /attention_chunk_size is 8192/],
    [{ ...q3, attention_bias: true }, /attention_bias is true; Qwen3 attention layers with bias/],
    [{ ...SMALL, model_type: 'llama', use_qk_norm: true }, /use_qk_norm is true; q\/k normalization is supported for qwen3 only/],
    [{ ...SMALL, model_type: 'mistral', sliding_window: 0 }, /sliding_window must be a positive integer or null \(found 0\)/],
    [{ ...q3, use_sliding_window: true, sliding_window: 'wide', max_window_layers: 0 }, /sliding_window must be a positive integer or null \(found "wide"\)/],
  ];
  for (const [cfg, re] of refused) expect(() => parseArchitecture(cfg), re.source).toThrow(re);
  // A single expert or experts set to 0 is a dense model.
  expect(parseArchitecture({ ...q3, num_experts: 0 }).modelType).toBe('qwen3');
});

test('a qwen3 folder loads with its q/k norms, and a missing one is named', async () => {
  const dir = storiesCopy((cfg) => {
    cfg.model_type = 'qwen3';
  });
  temps.push(dir);
  const norms = [];
  for (let i = 0; i < 5; i++) {
    for (const p of ['q', 'k']) norms.push({ name: `model.layers.${i}.self_attn.${p}_norm.weight`, dtype: 'F32', shape: [8], data: Buffer.alloc(32) });
  }
  writeSafetensors(path.join(dir, 'model.safetensors'), [...storiesTensors(), ...norms]);
  const m = await loadModel(dir);
  try {
    expect(m.architecture).toMatchObject({ modelType: 'qwen3', qkNorm: true, headDim: 8 });
  } finally {
    m.close();
  }
  writeSafetensors(path.join(dir, 'model.safetensors'), [...storiesTensors(), ...norms.slice(1)]);
  await expect(loadModel(dir)).rejects.toThrow(/tensor model\.layers\.0\.self_attn\.q_norm\.weight is missing; config\.json \(qwen3\) needs it/);
});
