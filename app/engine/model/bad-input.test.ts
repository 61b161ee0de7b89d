// Every bad model folder gives a UserError that names the file and says what is wrong. The damaged
// folders are copies of stories260k written by the test into temp folders.
import { mkdtempSync, readFileSync, rmSync, truncateSync, statSync, writeFileSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, expect, test } from 'vitest';

import { UserError } from '../../util/errors.js';
import { loadModel } from './loader.js';
import { layoutSafetensors, storiesCopy, storiesTensors, writeSafetensors, writeSafetensorsRaw } from './test-helpers.js';

const temps: string[] = [];
afterAll(() => temps.forEach((d) => rmSync(d, { recursive: true, force: true })));
function folder(edit?: (cfg: Record<string, unknown>) => void): string {
  const dir = storiesCopy(edit);
  temps.push(dir);
  return dir;
}

/** Loads `dir` expecting a UserError whose message matches every pattern. */
async function expectUserError(dir: string, ...patterns: RegExp[]): Promise<string> {
  const err = await loadModel(dir).then(
    (m) => {
      m.close();
      return null;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  const message = (err as UserError).message;
  for (const p of patterns) expect(message).toMatch(p);
  return message;
}

/** A stories260k folder whose model.safetensors has the header edited by `edit`. */
function withHeader(edit: (header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>, dataBytes: number) => void): string {
  const dir = folder();
  const { header, data } = layoutSafetensors(storiesTensors());
  edit(header as never, data.length);
  writeSafetensorsRaw(path.join(dir, 'model.safetensors'), header, data);
  return dir;
}

test('folder without config.json', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'quip-empty-'));
  temps.push(dir);
  await expectUserError(dir, /has no config\.json/, new RegExp(dir.replace(/[\\.]/g, '\\$&')));
  await expectUserError(path.join(dir, 'nope'), /No folder at/);
  writeFileSync(path.join(dir, 'tiny.Q4_1.gguf'), 'GGUF');
  await expectUserError(dir, /has no config\.json.*It holds a GGUF file \(tiny\.Q4_1\.gguf\)/);
});

test('unsupported model_type lists the supported ones', async () => {
  const dir = folder((cfg) => {
    cfg.model_type = 'gpt2';
  });
  await expectUserError(dir, /^config\.json: model_type "gpt2" is not supported; the studio supports llama, mistral, qwen2/);
});

test('unsupported model_type with custom code says the code is ignored', async () => {
  const dir = folder((cfg) => {
    cfg.model_type = 'phi3small';
    cfg.auto_map = { AutoModelForCausalLM: 'modeling_phi3_small.Phi3SmallForCausalLM' };
  });
  await expectUserError(dir, /model_type "phi3small" is not supported/, /custom model code, which is ignored/);
});

test('config and tensor shapes disagree', async () => {
  const dir = folder((cfg) => {
    cfg.head_dim = 16; // 8 heads x 16 = 128 rows of q_proj, but the weights have 64
  });
  writeSafetensors(path.join(dir, 'model.safetensors'), storiesTensors());
  await expectUserError(
    dir,
    /^model\.safetensors: tensor model\.layers\.0\.self_attn\.q_proj\.weight has shape \[64, 64\] but config\.json \(num_attention_heads 8 x head_dim 16 by hidden_size 64\) says \[128, 64\]/,
  );
});

test('a tensor the config needs is missing', async () => {
  const dir = folder((cfg) => {
    cfg.tie_word_embeddings = false;
  });
  writeSafetensors(path.join(dir, 'model.safetensors'), storiesTensors());
  await expectUserError(dir, /^model\.safetensors: tensor lm_head\.weight is missing/);
});

test('safetensors header length past the end of the file', async () => {
  const dir = folder();
  const { header, data } = layoutSafetensors(storiesTensors());
  writeSafetensorsRaw(path.join(dir, 'model.safetensors'), header, data, 10_000_000n);
  await expectUserError(dir, /^model\.safetensors: the header length 10000000 runs past the end of the file \(\d+ bytes\)/);
});

test('safetensors header that is not JSON', async () => {
  const dir = folder();
  writeSafetensorsRaw(path.join(dir, 'model.safetensors'), '{"model.embed_tokens.weight": {"dtype": "F32", ', Buffer.alloc(64));
  await expectUserError(dir, /^model\.safetensors: the safetensors header is not valid JSON/);
});

test('overlapping tensor data', async () => {
  const dir = withHeader((h) => {
    const emb = h['model.embed_tokens.weight'].data_offsets;
    const norm = h['model.layers.0.input_layernorm.weight'];
    const len = norm.data_offsets[1] - norm.data_offsets[0];
    norm.data_offsets = [emb[1] - 16, emb[1] - 16 + len];
  });
  await expectUserError(dir, /^model\.safetensors: tensors model\.embed_tokens\.weight \[0, 131072\] and model\.layers\.0\.input_layernorm\.weight \[131056, 131312\] overlap/);
});

test('tensor offsets out of range', async () => {
  const dir = withHeader((h, dataBytes) => {
    const t = h['model.norm.weight'];
    const len = t.data_offsets[1] - t.data_offsets[0];
    t.data_offsets = [dataBytes + 4096, dataBytes + 4096 + len];
  });
  await expectUserError(dir, /^model\.safetensors: tensor model\.norm\.weight has data_offsets \[\d+, \d+\] outside the \d+ bytes of tensor data/);
});

test('offsets that do not match dtype and shape', async () => {
  const dir = withHeader((h) => {
    h['model.norm.weight'].shape = [65];
  });
  await expectUserError(dir, /^model\.safetensors: tensor model\.norm\.weight \(F32 \[65\]\) should hold 260 bytes but its data_offsets \[\d+, \d+\] span 256 bytes/);
});

test('unknown dtype and unsupported dtypes are named', async () => {
  const unknown = withHeader((h) => {
    h['model.norm.weight'].dtype = 'Q7';
  });
  await expectUserError(unknown, /^model\.safetensors: tensor model\.norm\.weight has an unknown dtype "Q7"/);
  const int8 = withHeader((h) => {
    const t = h['model.norm.weight'];
    t.dtype = 'I8';
    t.shape = [256];
  });
  await expectUserError(int8, /^model\.safetensors: I8 tensors are not supported \(tensor model\.norm\.weight\)/);
});

test('truncated tensor data', async () => {
  const dir = folder();
  const file = path.join(dir, 'model.safetensors');
  writeSafetensors(file, storiesTensors());
  truncateSync(file, statSync(file).size - 1000);
  await expectUserError(dir, /^model\.safetensors: the file is truncated: its header describes 1040128 bytes of tensor data but only 1039128 bytes follow the header/);
});

test('sharded index naming a missing shard, and a folder without safetensors', async () => {
  const dir = folder();
  writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), storiesTensors());
  const weightMap = Object.fromEntries(storiesTensors().map((t, i) => [t.name, i < 3 ? 'model-00001-of-00002.safetensors' : 'model-00002-of-00002.safetensors']));
  writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
  await expectUserError(dir, /^model\.safetensors\.index\.json lists the shard model-00002-of-00002\.safetensors, which is missing/);

  unlinkSync(path.join(dir, 'model.safetensors.index.json'));
  unlinkSync(path.join(dir, 'model-00001-of-00002.safetensors'));
  writeFileSync(path.join(dir, 'pytorch_model.bin'), 'x');
  await expectUserError(dir, /holds only PyTorch \.bin weights; the studio reads safetensors/);
});

test('loadModel needs tokenizer.json', async () => {
  const dir = folder();
  writeSafetensors(path.join(dir, 'model.safetensors'), storiesTensors());
  unlinkSync(path.join(dir, 'tokenizer.json'));
  await expectUserError(dir, /has no tokenizer\.json/);
});

test('config.json that is not JSON', async () => {
  const dir = folder();
  writeFileSync(path.join(dir, 'config.json'), readFileSync(path.join(dir, 'config.json'), 'utf8').slice(0, 40));
  await expectUserError(dir, /^config\.json in .* is not valid JSON/);
});
