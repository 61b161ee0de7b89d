// Chat templates under a budget: hostile templates (range(1e9), nested loops, endless recursion,
// huge output, doubling lists) end in a clear error naming the model within a few seconds and the
// test process lives on; real templates (SmolLM2's, a Llama 3-style one) render exactly as
// @huggingface/jinja's own Template.render does; Ctrl-C interrupts a render in a child process.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { Template } from '@huggingface/jinja';
import { afterAll, describe, expect, it } from 'vitest';

import { openGguf } from '../gguf/reader.js';
import { compileChatTemplate } from './chat-template.js';
import { loadChatTemplate } from './tokenizer.js';

const SMOL_GGUF = path.resolve('../shared/data/models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf');
const root = mkdtempSync(path.join(os.tmpdir(), 'quip-chat-template-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A model folder holding only a tokenizer_config.json with this chat template. */
function modelWithTemplate(name: string, template: string): string {
  const dir = path.join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: template }));
  return dir;
}

const MESSAGES = [
  { role: 'system', content: 'You are brief.' },
  { role: 'user', content: 'Hello there' },
  { role: 'assistant', content: 'Hi!' },
  { role: 'user', content: 'Tell me a "story" with\nnew lines & <tags>.' },
];

describe('templates over budget fail clearly and quickly', () => {
  const hostile: Array<[string, string, RegExp]> = [
    ['range-1e9', '{% for i in range(1000000000) %}x{% endfor %}', /asked for range\(\) of 1,000,000,000 numbers \(at most 1,000,000\)/],
    ['nested-loops', '{% for i in range(10000) %}{% for j in range(10000) %}{{ j }}{% endfor %}{% endfor %}', /took more than 2 s to render/],
    ['nested-empty-loops', '{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}', /took more than 2 s to render/],
    ['recursion', '{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% endif %}x{% endmacro %}{{ f(1000000) }}', /nests deeper than 500 levels \(a macro that calls itself without end\?\)/],
    ['recursion-by-argument', '{% macro f(g, n) %}{{ g(g, n + 1) }}{% endmacro %}{{ f(f, 0) }}', /nests deeper than 500 levels/],
    ['huge-output', `{% for i in range(100000) %}{{ '${'0123456789'.repeat(1000)}' }}{% endfor %}`, /produced more than 16,000,\d{3} characters in all/],
    ['doubling-text', "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}", /produced a text of more than 1,000,\d{3} characters/],
    ['doubling-list', '{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}', /built a list of more than 1,000,000 items/],
    ['wide-indent', "{{ 'a\nb' | indent(10 ** 8, true) }}", /produced a text of more than 1,000,\d{3} characters/],
    ['widest-indent', "{{ 'a\nb\nc' | indent(500000000, true) }}", /built a text or list longer than JavaScript allows/],
  ];
  for (const [name, source, pattern] of hostile) {
    it(name, () => {
      const dir = modelWithTemplate(name, source);
      const render = loadChatTemplate(dir, null)!;
      const t0 = performance.now();
      let err: (Error & { code?: string }) | null = null;
      try {
        render([{ role: 'user', content: 'hi' }]);
      } catch (e) {
        err = e as Error & { code?: string };
      }
      const seconds = (performance.now() - t0) / 1000;
      expect(err, 'the render should fail').not.toBeNull();
      expect(err!.message).toMatch(pattern);
      expect(err!.message).toContain(`The chat template of ${dir} (tokenizer_config.json)`);
      expect(err!.message).toMatch(/Fix the template, or use the model without its chat template\./);
      expect(err!.code).toBe('TEMPLATE_LIMIT');
      expect(seconds).toBeLessThan(4);
    }, 20_000);
  }

  it('limits can be tightened (and a template within them still renders)', () => {
    const t = compileChatTemplate('{% for i in range(n) %}x{% endfor %}', 'tiny', 'chat_template.jinja', { maxItems: 10 });
    expect(t.render({ n: 10 })).toBe('x'.repeat(10));
    expect(() => t.render({ n: 11 })).toThrow(/The chat template of tiny \(chat_template\.jinja\) asked for range\(\) of 11 numbers \(at most 10\)/);
  });

  it('a long message is allowed for: the text bound grows with the messages', () => {
    const t = compileChatTemplate("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}", 'm', 'f');
    const long = 'word '.repeat(1_000_000); // 5 M characters, over the 1 M bound on the template's own text
    expect(t.render({ messages: [{ role: 'user', content: long }] })).toBe(`<|user|>${long}\n`);
  });

  it('a template that does not parse or raises names the model and says why', () => {
    expect(() => loadChatTemplate(modelWithTemplate('unparsable', '{% for m in messages %}{{ m }'), null)).toThrow(/The chat template of .*unparsable \(tokenizer_config\.json\) cannot be parsed: /);
    const raising = loadChatTemplate(modelWithTemplate('raising', "{{ raise_exception('Only user and assistant roles are supported') }}"), null)!;
    expect(() => raising(MESSAGES)).toThrow(/The chat template of .*raising \(tokenizer_config\.json\) failed to render: Only user and assistant roles are supported\./);
  });
});

describe('real templates render as @huggingface/jinja renders them', () => {
  const smol = (() => {
    const { header, file } = openGguf(SMOL_GGUF);
    try {
      return header.metadata.string('tokenizer.chat_template')!;
    } finally {
      file.close();
    }
  })();
  // Llama 3.1's template shape: namespace, strftime_now, tojson, loop.first, slicing, raise_exception.
  const llama3 = `{{- bos_token }}
{%- if not date_string is defined %}{%- set date_string = strftime_now("%d %b %Y") %}{%- endif %}
{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}{%- set messages = messages[1:] %}{%- else %}{%- set system_message = "" %}{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}{{- "Today Date: " + date_string + "\\n\\n" }}{{- system_message }}{{- "<|eot_id|>" }}
{%- set ns = namespace(n=0) %}
{%- for message in messages %}
  {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif %}
  {%- set ns.n = ns.n + 1 %}
  {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{{- ns.n | tojson }}{%- for i in range(2) %}{{ i }}{% endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}`;

  for (const [name, source] of [['SmolLM2-135M-Instruct', smol], ['llama3-style', llama3]] as const) {
    it(name, () => {
      const dir = modelWithTemplate(name, source);
      const tok = { bosToken: '<|begin_of_text|>', eosToken: '<|eot_id|>' } as Parameters<typeof loadChatTemplate>[1];
      const render = loadChatTemplate(dir, tok)!;
      for (const messages of [MESSAGES, MESSAGES.slice(1, 2), MESSAGES.slice(1)]) {
        for (const addGenerationPrompt of [true, false]) {
          const reference = new Template(source).render({ messages, add_generation_prompt: addGenerationPrompt, bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>' });
          expect(render(messages, { addGenerationPrompt })).toBe(reference);
        }
      }
    });
  }
});

describe('Ctrl-C', () => {
  it('interrupts a render at once (a child process rendering an endless template)', async () => {
    const esbuild = await import('esbuild');
    const script = path.resolve('test-results', `chat-template-sigint-${process.pid}.mjs`);
    await esbuild.build({
      stdin: {
        contents: `import { compileChatTemplate } from './app/engine/model/chat-template.ts';
          const t = compileChatTemplate('{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}', 'endless', 'chat_template.jinja', { seconds: 60 });
          process.stdout.write('rendering\\n');
          try { t.render({ messages: [] }); } catch (e) { process.stdout.write(e.code + ': ' + e.message + '\\n'); process.exit(130); }`,
        resolveDir: path.resolve('.'), loader: 'ts',
      },
      bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile: script, logLevel: 'error',
    });
    try {
      const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      const t0 = await new Promise<number>((resolve) =>
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('rendering')) setTimeout(() => { child.kill('SIGINT'); resolve(performance.now()); }, 300);
        }),
      );
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      expect(performance.now() - t0).toBeLessThan(2000);
      expect(code).toBe(130);
      expect(out).toContain('CANCELLED: Rendering the chat template of endless was interrupted (Ctrl-C).');
    } finally {
      rmSync(script, { force: true });
    }
  }, 30_000);
});
