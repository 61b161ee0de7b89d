// config.json fields that an import or a hand edit can get wrong, each refused with a message naming
// the field: NaN / infinity stored as null, a context of 0, fractional counts, an unknown RoPE
// scaling type. (A null where the studio has a default would otherwise silently become that default.)
import { expect, test } from 'vitest';

import { parseArchitecture, type RawConfig } from './config.js';

const GOOD: RawConfig = {
  model_type: 'llama', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
  vocab_size: 512, max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 10000, hidden_act: 'silu',
};

const refused = (patch: RawConfig) => () => parseArchitecture({ ...GOOD, ...patch });

test('the reference config parses', () => {
  expect(parseArchitecture(GOOD)).toMatchObject({ numLayers: 2, contextLength: 256, ropeTheta: 10000, rmsNormEps: 1e-5 });
});

test('NaN or infinity written as null is refused, not replaced by a default', () => {
  expect(refused({ rope_theta: null })).toThrow(/config\.json: rope_theta is null, which is not a number \(JSON writers store NaN and infinity as null\)/);
  expect(refused({ rms_norm_eps: null })).toThrow(/config\.json: rms_norm_eps is null/);
  expect(refused({ max_position_embeddings: null })).toThrow(/config\.json: max_position_embeddings is null/);
  expect(refused({ num_hidden_layers: null })).toThrow(/config\.json: num_hidden_layers is missing/);
  // A null that means "same as" in Hugging Face's own configs stays allowed.
  expect(parseArchitecture({ ...GOOD, num_key_value_heads: null }).numKeyValueHeads).toBe(4);
});

test('a context of 0, fractional or negative counts, and non-numbers are refused by name', () => {
  expect(refused({ max_position_embeddings: 0 })).toThrow(/max_position_embeddings must be a positive integer \(found 0\)/);
  expect(refused({ num_hidden_layers: 1.5 })).toThrow(/num_hidden_layers must be a positive integer \(found 1\.5\)/);
  expect(refused({ hidden_size: -64 })).toThrow(/hidden_size must be a positive integer/);
  expect(refused({ intermediate_size: '128' })).toThrow(/intermediate_size must be a positive integer/);
  expect(refused({ rope_theta: 0 })).toThrow(/rope_theta must be a positive number \(found 0\)/);
});

test('an unknown or incomplete rope_scaling is refused by name', () => {
  expect(refused({ rope_scaling: { rope_type: 'yarn', factor: 4 } })).toThrow(/rope_scaling type "yarn" is not supported; the studio supports linear, llama3, dynamic/);
  expect(refused({ rope_scaling: { type: 'linear', factor: null } })).toThrow(/rope_scaling\.factor must be a positive number/);
  expect(refused({ rope_scaling: { rope_type: 'llama3', factor: 8 } })).toThrow(/llama3 needs low_freq_factor/);
});
