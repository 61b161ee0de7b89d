// Every bad model folder gives a UserError that names the file and says what is wrong. The damaged
// folders are copies of stories260k written by the test into temp folders.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, truncateSync, statSync, writeFileSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { UserError } from '../../util/errors.js';
import { loadModel } from './loader.js';
import { layoutSafetensors, storiesCopy, storiesTensors, writeSafetensors, writeSafetensorsRaw } from '../../testing/model-files.js';

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
  // As the reference library: tensors tile the data section, so a displaced tensor leaves a gap.
  await expectUserError(dir, /^model\.safetensors: tensor \S+ starts at data offset \d+ but the previous tensor \S+ ends at \d+; safetensors tensors are stored back to back without gaps/);
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

// Issue #16 item 6: the format is enforced exactly as huggingface/safetensors does (read_metadata and
// Metadata::validate): header length, UTF-8 JSON object starting with "{", string-only __metadata__,
// data tiled from 0 without gaps, data end = file end.
describe('safetensors checked as strictly as the reference library', () => {
  function storiesFile(headerPad: number, headerLength?: (jsonBytes: number) => number, extra = Buffer.alloc(0)): string {
    const dir = folder();
    const { header, data } = layoutSafetensors(storiesTensors());
    const json = JSON.stringify(header) + ' '.repeat(headerPad);
    const n = Buffer.byteLength(json);
    writeSafetensorsRaw(path.join(dir, 'model.safetensors'), json, Buffer.concat([data, extra]), headerLength ? BigInt(headerLength(n)) : undefined);
    return dir;
  }

  test('a header padded with trailing spaces loads (writers pad to 8 bytes)', async () => {
    const m = await loadModel(storiesFile(7));
    m.close();
  });

  test('trailing bytes after the tensor data are refused', async () => {
    await expectUserError(storiesFile(0, undefined, Buffer.from([0])), /^model\.safetensors: the file has 1 byte after the end of its tensor data .*header length is wrong or bytes were appended/);
  });

  test('a header length one byte short (cutting into the padding) is refused, not read one byte off', async () => {
    await expectUserError(storiesFile(8, (n) => n - 1), /^model\.safetensors: the file has 1 byte after the end of its tensor data/);
  });

  test('a header length that does not reach the closing brace', async () => {
    await expectUserError(storiesFile(0, (n) => n - 1), /^model\.safetensors: the safetensors header is not valid JSON/);
  });

  test('a header that does not start with "{" is refused', async () => {
    const dir = folder();
    const { header, data } = layoutSafetensors(storiesTensors());
    writeSafetensorsRaw(path.join(dir, 'model.safetensors'), ' ' + JSON.stringify(header), data);
    await expectUserError(dir, /^model\.safetensors: the safetensors header does not start with "\{"/);
  });

  test('a header that is not UTF-8 is refused', async () => {
    const dir = folder();
    const { header, data } = layoutSafetensors(storiesTensors());
    (header.__metadata__ as Record<string, string>).format = 'p\u00fft';
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    json[json.indexOf(0xc3)] = 0xff;
    writeSafetensorsRaw(path.join(dir, 'model.safetensors'), json.toString('latin1'), data);
    const bytes = readFileSync(path.join(dir, 'model.safetensors'));
    const fixed = Buffer.concat([bytes.subarray(0, 8), json, data]);
    writeFileSync(path.join(dir, 'model.safetensors'), fixed);
    await expectUserError(dir, /^model\.safetensors: the safetensors header is not valid UTF-8/);
  });

  test('__metadata__ must map names to strings', async () => {
    const dir = withHeader((h) => {
      (h as Record<string, unknown>).__metadata__ = { format: 'pt', step: 3 };
    });
    await expectUserError(dir, /^model\.safetensors: the safetensors header's __metadata__ must be an object of strings/);
  });

  test('the data must start at offset 0', async () => {
    const dir = folder();
    const { header, data } = layoutSafetensors(storiesTensors());
    for (const [k, v] of Object.entries(header)) if (k !== '__metadata__') (v as { data_offsets: number[] }).data_offsets = (v as { data_offsets: number[] }).data_offsets.map((o) => o + 4);
    writeSafetensorsRaw(path.join(dir, 'model.safetensors'), header, Buffer.concat([Buffer.alloc(4), data]));
    await expectUserError(dir, /^model\.safetensors: tensor model\.embed_tokens\.weight starts at data offset 4 but the data starts at 0/);
  });

  test('a shape whose size overflows is refused', async () => {
    const dir = withHeader((h) => {
      h['model.norm.weight'].shape = [2 ** 40, 2 ** 40];
    });
    await expectUserError(dir, /^model\.safetensors: tensor model\.norm\.weight has shape \[1099511627776, 1099511627776\], too large for any file/);
  });
});

// Issue #16 item 5: the config is checked against the tensors present before anything proportional
// to it is built (1e7 layers used to end in "Map maximum size exceeded").
test('num_hidden_layers far beyond the weights fails at once', async () => {
  for (const layers of [1e6, 1e7, 2 ** 52]) {
    const dir = folder((cfg) => {
      cfg.num_hidden_layers = layers;
    });
    writeSafetensors(path.join(dir, 'model.safetensors'), storiesTensors());
    const t0 = performance.now();
    await expectUserError(dir, new RegExp(`^config\\.json: num_hidden_layers is ${layers} but model\\.safetensors holds the tensors of 5 blocks`));
    expect(performance.now() - t0).toBeLessThan(2000);
  }
});

// Issue #16 item 12a: a FIFO named like a model file used to block inspection forever.
test.skipIf(process.platform === 'win32')('a FIFO named model.safetensors or config.json is refused, not opened', async () => {
  const dir = folder();
  execFileSync('mkfifo', [path.join(dir, 'model.safetensors')]);
  await expectUserError(dir, /^model\.safetensors: .*model\.safetensors is a named pipe \(FIFO\), not a regular file/);
  const dir2 = folder();
  unlinkSync(path.join(dir2, 'config.json'));
  execFileSync('mkfifo', [path.join(dir2, 'config.json')]);
  await expectUserError(dir2, /^config\.json: .*config\.json is a named pipe \(FIFO\), not a regular file/);
  const dir3 = folder();
  writeSafetensors(path.join(dir3, 'model.safetensors'), storiesTensors());
  execFileSync('mkfifo', [path.join(dir3, 'chat_template.jinja')]);
  await expectUserError(dir3, /Chat template: .*chat_template\.jinja is a named pipe \(FIFO\), not a regular file/);
}, 10_000);

// Found by the fuzz suite: the error message itself overflowed the stack (JSON.stringify of the shape).
test('a shape nested 100,000 deep gets a clear error, not a RangeError', async () => {
  const dir = folder();
  const { header, data } = layoutSafetensors(storiesTensors());
  (header['model.norm.weight'] as { shape: unknown }).shape = '__DEEP__';
  const json = JSON.stringify(header).replace('"__DEEP__"', '['.repeat(100_000) + ']'.repeat(100_000));
  writeSafetensorsRaw(path.join(dir, 'model.safetensors'), json, data);
  await expectUserError(dir, /^model\.safetensors: tensor model\.norm\.weight has an invalid shape \(an array nested too deep to show\)/);
});

// Found by the fuzz suite (config loader): a damaged tokenizer.json post-processor passed loading and
// failed at the first encode with "TypeError: Cannot use 'in' operator"; a deep hidden_act overflowed
// the stack while its error message was written.
test('a tokenizer.json that cannot encode is refused at load with a clear error', async () => {
  const dir = folder();
  writeSafetensors(path.join(dir, 'model.safetensors'), storiesTensors());
  const tj = JSON.parse(readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
  tj.post_processor = { type: 'TemplateProcessing', single: [1], pair: [], special_tokens: {} };
  writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tj));
  await expectUserError(dir, /^tokenizer\.json in .* cannot be used: turning text into tokens fails \(.*\)\. The file is damaged/);
});

test('a hidden_act nested 100,000 deep gets a clear error', async () => {
  const dir = folder((cfg) => {
    cfg.hidden_act = '__DEEP__';
  });
  const text = readFileSync(path.join(dir, 'config.json'), 'utf8').replace('"__DEEP__"', '['.repeat(100_000) + ']'.repeat(100_000));
  writeFileSync(path.join(dir, 'config.json'), text);
  await expectUserError(dir, /^config\.json: hidden_act \(an array nested too deep to show\) is not supported/);
});
