// Loading real model folders: stories260k as shipped, and converted (F16, BF16) and sharded copies of
// it written by the test with a plain writer independent of the parser under test.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { native } from '../native.js';
import { loadModel } from './loader.js';
import { f16BitsToNumber, f32ToF16Bits, STORIES_DIR, storiesCopy, storiesTensors, writeSafetensors, type RawTensor } from '../../testing/model-files.js';

const temps: string[] = [];
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));
function tempCopy(edit?: (cfg: Record<string, unknown>) => void): string {
  const dir = storiesCopy(edit);
  temps.push(dir);
  return dir;
}

describe('stories260k', () => {
  test('config.json gives the documented architecture', async () => {
    const m = await loadModel(STORIES_DIR);
    try {
      expect(m.architecture).toEqual({
        modelType: 'llama', family: 'Llama', hiddenSize: 64, intermediateSize: 172, numLayers: 5, numHeads: 8,
        numKeyValueHeads: 4, headDim: 8, vocabSize: 512, contextLength: 512, ropeTheta: 10000, ropeScaling: null,
        rmsNormEps: 1e-5, tiedEmbeddings: true, attentionBias: false, torchDtype: 'float32',
      });
      expect(m.config.model_type).toBe('llama');
      // 5 blocks x (2 norms + 7 linears) + embedding + final norm; tied, so no lm_head.
      expect(m.tensorNames()).toHaveLength(47);
      expect(m.tensorInfo('model.layers.4.mlp.down_proj.weight')).toEqual({ dtype: 'F32', shape: [64, 172], file: 'model.safetensors' });
      expect(m.tensorInfo('model.layers.0.self_attn.k_proj.weight').shape).toEqual([32, 64]);
      expect(m.warnings).toEqual([]);
    } finally {
      m.close();
    }
  });

  test('tensor() points into the mapped file at the bytes the header names', async () => {
    const m = await loadModel(STORIES_DIR);
    try {
      const plain = new Map(storiesTensors().map((t) => [t.name, t]));
      for (const name of m.tensorNames()) {
        const ref = m.tensor(name);
        const want = plain.get(name)!;
        expect(ref.shape).toEqual(want.shape);
        expect(ref.file.read(ref.offset, want.data.length).equals(want.data)).toBe(true);
      }
      expect(() => m.tensor('model.layers.9.mlp.up_proj.weight')).toThrow(/has no tensor model\.layers\.9\.mlp\.up_proj\.weight/);
    } finally {
      m.close();
    }
  });

  test('tokenizer: encode matches the reference ids and decode gives the reference text', async () => {
    const m = await loadModel(STORIES_DIR);
    try {
      const ref = JSON.parse(readFileSync(path.join(STORIES_DIR, 'reference-greedy-ids.json'), 'utf8')) as number[];
      const text = m.tokenizer.decode(ref);
      expect(text.startsWith('Once upon a time, there was a little girl named Lily.')).toBe(true);
      // The reference ids were produced by an independent implementation; its first sentence,
      // encoded by our tokenizer, must give exactly its first 16 ids (BOS included).
      expect(m.tokenizer.encode('Once upon a time, there was a little girl named Lily.')).toEqual(ref.slice(0, 16));
      expect(m.tokenizer.encode('Once upon a time')).toEqual([1, 403, 407, 261, 378]);
      expect(m.tokenizer.encode('Once upon a time', { addBos: false })).toEqual([403, 407, 261, 378]);
      expect(m.tokenizer).toMatchObject({ bosId: 1, eosIds: [2], addBos: true, vocabSize: 512, kind: 'BPE', bosToken: '<s>', eosToken: '</s>' });
      expect(m.chatTemplate).toBeNull();
    } finally {
      m.close();
    }
  });
});

test('chat template from tokenizer_config.json renders with bos/eos and the generation prompt', async () => {
  const dir = tempCopy();
  const tcPath = path.join(dir, 'tokenizer_config.json');
  const tc = JSON.parse(readFileSync(tcPath, 'utf8'));
  tc.chat_template =
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}";
  writeFileSync(tcPath, JSON.stringify(tc));
  writeSafetensors(path.join(dir, 'model.safetensors'), storiesTensors());
  const m = await loadModel(dir);
  try {
    const msgs = [{ role: 'user', content: 'Hi' }];
    expect(m.chatTemplate!(msgs)).toBe('<s><|user|>Hi</s><|assistant|>');
    expect(m.chatTemplate!(msgs, { addGenerationPrompt: false })).toBe('<s><|user|>Hi</s>');
  } finally {
    m.close();
  }
});

test('repository code named in config.json is ignored with a warning', async () => {
  const dir = tempCopy((cfg) => {
    cfg.auto_map = { AutoModelForCausalLM: 'modeling_custom.CustomLlama' };
  });
  writeSafetensors(path.join(dir, 'model.safetensors'), storiesTensors());
  const m = await loadModel(dir);
  try {
    expect(m.warnings.join('\n')).toMatch(/custom model code \(modeling_custom\.CustomLlama\).*never runs code/);
  } finally {
    m.close();
  }
});

test('sharded checkpoint: model.safetensors.index.json with two shards', async () => {
  const dir = tempCopy();
  const tensors = storiesTensors();
  const half = Math.ceil(tensors.length / 2);
  const shards = [tensors.slice(0, half), tensors.slice(half)];
  const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const weightMap: Record<string, string> = {};
  shards.forEach((s, i) => {
    writeSafetensors(path.join(dir, names[i]), s);
    for (const t of s) weightMap[t.name] = names[i];
  });
  writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  const m = await loadModel(dir);
  try {
    expect(m.weightFiles.map((f) => [f.file, f.tensors])).toEqual([[names[0], half], [names[1], tensors.length - half]]);
    for (const t of tensors) {
      expect(m.tensorInfo(t.name).file).toBe(weightMap[t.name]);
      const ref = m.tensor(t.name);
      expect(ref.file.read(ref.offset, t.data.length).equals(t.data)).toBe(true);
    }
  } finally {
    m.close();
  }
});

/** Converts every F32 tensor to `dtype`; returns the files' tensors and the exact values written. */
function converted(dtype: 'F16' | 'BF16'): { tensors: RawTensor[]; values: Map<string, Float64Array> } {
  const values = new Map<string, Float64Array>();
  const tensors = storiesTensors().map((t) => {
    const f = new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.length));
    const out = Buffer.alloc(f.length * 2);
    const v = new Float64Array(f.length);
    const u32 = new Uint32Array(f.buffer);
    for (let i = 0; i < f.length; i++) {
      // BF16 keeps the top 16 bits of the float32 (truncation is exact to decode: bits << 16).
      const bits = dtype === 'F16' ? f32ToF16Bits(f[i]) : u32[i] >>> 16;
      out.writeUInt16LE(bits, 2 * i);
      v[i] = dtype === 'F16' ? f16BitsToNumber(bits) : new Float32Array(new Uint32Array([bits << 16]).buffer)[0];
    }
    values.set(t.name, v);
    return { name: t.name, dtype, shape: t.shape, data: out };
  });
  return { tensors, values };
}

test.each(['F16', 'BF16'] as const)('%s weights load and the native core reads the right values', async (dtype) => {
  const dir = tempCopy((cfg) => {
    cfg.torch_dtype = dtype === 'F16' ? 'float16' : 'bfloat16';
  });
  const { tensors, values } = converted(dtype);
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  const m = await loadModel(dir);
  try {
    expect(m.architecture.torchDtype).toBe(dtype === 'F16' ? 'float16' : 'bfloat16');
    for (const name of ['model.embed_tokens.weight', 'model.layers.2.mlp.down_proj.weight', 'model.norm.weight']) {
      const ref = m.tensor(name);
      expect(ref.dtype).toBe(dtype);
      const v = values.get(name)!;
      // Statistics in float64 from the values written, against the native core reading the mapping.
      let min = Infinity, max = -Infinity, sum = 0, sq = 0;
      for (const x of v) {
        min = Math.min(min, x);
        max = Math.max(max, x);
        sum += x;
        sq += x * x;
      }
      const stats = await native().tensorStats(ref);
      expect(stats.min).toBe(min);
      expect(stats.max).toBe(max);
      expect(stats.mean).toBeCloseTo(sum / v.length, 6);
      expect(stats.rms).toBeCloseTo(Math.sqrt(sq / v.length), 6);
      expect(stats.nonFinite).toBe(0);
    }
  } finally {
    m.close();
  }
});
