// config.json of each supported family, written out as the published configs have them, and a qwen2
// folder (stories260k's weights plus q/k/v biases) loaded end to end.
import { rmSync } from 'node:fs';
import path from 'node:path';

import { afterAll, expect, test } from 'vitest';

import { expectedTensorShapes, parseArchitecture } from './config.js';
import { loadModel } from './loader.js';
import { storiesCopy, storiesTensors, writeSafetensors } from '../../testing/model-files.js';

const temps: string[] = [];
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));

test('Llama 3.2 style: llama3 rope scaling, tied embeddings, explicit head_dim, bfloat16', () => {
  const arch = parseArchitecture({
    model_type: 'llama', hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32,
    num_key_value_heads: 8, head_dim: 64, vocab_size: 128256, max_position_embeddings: 131072, rms_norm_eps: 1e-5,
    rope_theta: 500000.0, tie_word_embeddings: true, torch_dtype: 'bfloat16', hidden_act: 'silu', attention_bias: false,
    rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  });
  expect(arch).toMatchObject({
    family: 'Llama', numKeyValueHeads: 8, headDim: 64, contextLength: 131072, ropeTheta: 500000, tiedEmbeddings: true, torchDtype: 'bfloat16',
    ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
  });
  expect(expectedTensorShapes(arch).get('model.layers.15.self_attn.k_proj.weight')!.shape).toEqual([512, 2048]);
  expect(expectedTensorShapes(arch).has('lm_head.weight')).toBe(false);
});

test('Mistral style: head_dim derived, untied lm_head, sliding window warned about', () => {
  const warnings: string[] = [];
  const arch = parseArchitecture(
    {
      model_type: 'mistral', hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32,
      num_key_value_heads: 8, head_dim: null, vocab_size: 32000, max_position_embeddings: 32768, rms_norm_eps: 1e-5,
      rope_theta: 10000.0, sliding_window: 4096, tie_word_embeddings: false, torch_dtype: 'bfloat16', hidden_act: 'silu',
    },
    warnings,
  );
  expect(arch).toMatchObject({ family: 'Mistral', headDim: 128, attentionBias: false, tiedEmbeddings: false, ropeScaling: null });
  expect(expectedTensorShapes(arch).get('lm_head.weight')!.shape).toEqual([32000, 4096]);
  expect(warnings).toEqual([expect.stringMatching(/sliding attention window of 4096 tokens/)]);
});

test('Qwen2 style: q/k/v bias always, linear and dynamic rope scaling', () => {
  const base = {
    model_type: 'qwen2', hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14,
    num_key_value_heads: 2, vocab_size: 151936, max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 1000000.0,
    sliding_window: 32768, use_sliding_window: false, tie_word_embeddings: true, torch_dtype: 'bfloat16', hidden_act: 'silu',
  };
  const arch = parseArchitecture({ ...base, rope_scaling: { type: 'linear', factor: 2 } });
  expect(arch).toMatchObject({ family: 'Qwen2', headDim: 64, attentionBias: true, ropeScaling: { type: 'linear', factor: 2 } });
  expect(expectedTensorShapes(arch).get('model.layers.0.self_attn.k_proj.bias')!.shape).toEqual([128]);
  expect(parseArchitecture({ ...base, rope_scaling: { rope_type: 'dynamic', factor: 4 } }).ropeScaling).toEqual({ type: 'dynamic', factor: 4 });
});

test('configs the studio cannot run say why', () => {
  const ok = { model_type: 'llama', hidden_size: 64, intermediate_size: 172, num_hidden_layers: 1, num_attention_heads: 8, vocab_size: 32 };
  expect(() => parseArchitecture({ ...ok, rope_scaling: { rope_type: 'yarn', factor: 4 } })).toThrow(/rope_scaling type "yarn" is not supported; the studio supports linear, llama3, dynamic/);
  expect(() => parseArchitecture({ ...ok, rope_scaling: { rope_type: 'llama3', factor: 8 } })).toThrow(/llama3 needs low_freq_factor/);
  expect(() => parseArchitecture({ ...ok, num_key_value_heads: 3 })).toThrow(/num_attention_heads \(8\) must be a multiple of num_key_value_heads \(3\)/);
  expect(() => parseArchitecture({ ...ok, hidden_act: 'gelu' })).toThrow(/hidden_act "gelu" is not supported/);
  expect(() => parseArchitecture({ ...ok, hidden_size: undefined })).toThrow(/^config\.json: hidden_size is missing/);
  expect(() => parseArchitecture({ ...ok, quantization_config: { quant_method: 'gptq' } })).toThrow(/already quantized \(quant_method "gptq"\)/);
  expect(() => parseArchitecture({ ...ok, model_type: undefined })).toThrow(/model_type is missing; the studio supports llama, mistral, qwen2/);
});

test('a qwen2 folder loads with its q/k/v biases, and a missing bias is named', async () => {
  const dir = storiesCopy((cfg) => {
    cfg.model_type = 'qwen2';
  });
  temps.push(dir);
  const tensors = storiesTensors();
  const biases = [];
  for (let i = 0; i < 5; i++) {
    for (const [p, rows] of [['q', 64], ['k', 32], ['v', 32]] as const) {
      biases.push({ name: `model.layers.${i}.self_attn.${p}_proj.bias`, dtype: 'F32', shape: [rows], data: Buffer.alloc(rows * 4) });
    }
  }
  writeSafetensors(path.join(dir, 'model.safetensors'), [...tensors, ...biases.slice(1)]);
  await expect(loadModel(dir)).rejects.toThrow(/^model\.safetensors: tensor model\.layers\.0\.self_attn\.q_proj\.bias is missing/);
  writeSafetensors(path.join(dir, 'model.safetensors'), [...tensors, ...biases]);
  const m = await loadModel(dir);
  try {
    expect(m.architecture).toMatchObject({ modelType: 'qwen2', family: 'Qwen2', attentionBias: true });
    expect(m.tensorInfo('model.layers.4.self_attn.v_proj.bias')).toEqual({ dtype: 'F32', shape: [32], file: 'model.safetensors' });
  } finally {
    m.close();
  }
});
