// The chat as a local-LLM app, end to end in the browser face with the built-in stories260k (real
// server, real model-host process): a saved chat whose reply holds a ```js block (stories260k writes
// no code, so the studio home is seeded with it) renders the block highlighted, and its copy button
// puts the code on the clipboard; the conversation goes on for real to three turns with a system
// prompt; regenerate replaces the last reply (reusing the cached prompt); editing a user message
// resends it and drops what followed; the model stays loaded (Loaded models panel). Then the Local
// server switch: its URL and key answer the official `openai` client, each request shows in the log,
// and once switched off the URL refuses connections.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Page } from '@playwright/test';
import OpenAI from 'openai';
import { expect, ROOT, test } from '../fixtures/studio';

const SAMPLE = path.join(ROOT, 'assets', 'models', 'stories260k');
const CODE = 'const greet = (name) => `Hello, ${name}!`;\nconsole.log(greet("world"));';

test.use({ permissions: ['clipboard-read', 'clipboard-write'] });

async function nav(page: Page, label: string) {
  await page.getByRole('navigation', { name: 'Studio' }).getByRole('button', { name: label, exact: true }).click();
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

const clipboard = (page: Page) => page.evaluate(() => navigator.clipboard.readText());
const replies = (page: Page) => page.getByTestId('chat-assistant');
const users = (page: Page) => page.getByTestId('chat-user');

/** Sends a message and waits for its reply's figures (the reply is done). */
async function say(page: Page, text: string, expectedReplies: number) {
  await page.getByLabel('Message').fill(text);
  await page.getByRole('button', { name: 'Send' }).click();
  await expect(replies(page)).toHaveCount(expectedReplies);
  await expect(replies(page).last().locator('.chat-meta')).toContainText('tokens/s', { timeout: 60_000 });
}

test('chat: a code block with copy, three turns with a system prompt, regenerate, edit; the local server on and off', async ({ studioPage: page, studio }, testInfo) => {
  test.setTimeout(180_000);
  // A saved chat whose reply has a code block, as the studio writes them (chats/<id>.json).
  mkdirSync(path.join(studio.home, 'chats'), { recursive: true });
  const record = {
    chatId: 'seeded-code',
    title: 'A code sample',
    panes: [
      {
        modelDir: SAMPLE,
        modelName: 'stories260k',
        messages: [
          { role: 'user', content: 'Write a greeting in JavaScript.' },
          { role: 'assistant', content: `Here is one:\n\n\`\`\`js\n${CODE}\n\`\`\`\n\nRun it with **node**.`, stats: null },
        ],
      },
    ],
    sampling: { temperature: 0.8, topP: 0.95, maxTokens: 24, seed: 0 },
    updatedAt: new Date().toISOString(),
  };
  writeFileSync(path.join(studio.home, 'chats', 'seeded-code.json'), JSON.stringify(record));
  await page.reload();
  await nav(page, 'Chat');
  await page.getByRole('button', { name: 'A code sample', exact: true }).click();

  // The reply is Markdown: the block is code (highlighted), not ``` fences; Copy code copies it.
  const block = page.getByTestId('code-block');
  await expect(block).toHaveCount(1);
  await expect(block.locator('code')).toHaveText(CODE);
  await expect(block.locator('.hljs-keyword').first()).toHaveText('const');
  await expect(replies(page).first()).not.toContainText('```');
  await expect(replies(page).first().locator('strong')).toHaveText('node');
  await block.getByRole('button', { name: 'Copy code' }).click();
  await expect(block.getByRole('button', { name: 'Copy code' })).toHaveText('Copied');
  expect(await clipboard(page)).toBe(CODE);
  await page.screenshot({ path: testInfo.outputPath('chat-code-block.png') });

  // A system prompt, then two more turns for real (three in all).
  await page.getByTestId('system-prompt-toggle').click();
  await page.getByLabel('System prompt').fill('You tell short stories about animals.');
  await say(page, 'Once upon a time, there was a little dog', 2);
  await say(page, 'The dog found a ball', 3);
  await expect(users(page)).toHaveCount(3);
  for (const r of await replies(page).all()) expect(((await r.locator('.chat-text').textContent()) ?? '').trim().length).toBeGreaterThan(0);
  // Per reply: tokens/s, time to first token; the follow-up reused the cached prefix.
  await expect(replies(page).last().locator('.chat-meta')).toContainText('first token');
  await expect(replies(page).last().locator('.chat-meta')).toContainText('reused');
  await expect(page.getByTestId('context-meter')).toContainText('/ 512 tokens');
  await expect(page.getByTestId('loaded-model')).toContainText('stories260k');
  await expect(page.getByTestId('loaded-model')).toContainText(/\d+(\.\d+)? (KiB|MiB|GiB)/);
  await page.screenshot({ path: testInfo.outputPath('chat-three-turns.png') });

  // Regenerate: the last reply is asked again (same prompt, cached) and replaced.
  await page.getByTestId('regenerate').click();
  await expect(page.getByTestId('chat-stop')).toBeHidden({ timeout: 60_000 });
  await expect(replies(page)).toHaveCount(3);
  await expect(replies(page).last().locator('.chat-meta')).toContainText('tokens/s');
  await expect(replies(page).last().locator('.chat-meta')).toContainText('reused');

  // Edit the second message and send it again: what followed it goes, a new reply comes.
  await users(page).nth(1).getByTestId('edit-message').click();
  await page.getByLabel('Edited text').fill('Once upon a time, there was a big cat');
  await users(page).nth(1).getByRole('button', { name: 'Send' }).click();
  await expect(users(page)).toHaveCount(2);
  await expect(users(page).nth(1)).toContainText('there was a big cat');
  await expect(replies(page)).toHaveCount(2);
  await expect(replies(page).last().locator('.chat-meta')).toContainText('tokens/s', { timeout: 60_000 });

  // Saved as today, with the system prompt.
  await expect
    .poll(() => {
      const saved = JSON.parse(readFileSync(path.join(studio.home, 'chats', 'seeded-code.json'), 'utf8'));
      return [saved.systemPrompt, saved.panes[0].messages.length, saved.panes[0].messages[2].content];
    })
    .toEqual(['You tell short stories about animals.', 4, 'Once upon a time, there was a big cat']);

  // The local server: on at a free port, its URL and key shown; the openai client is answered.
  const server = page.getByTestId('local-server');
  await server.getByLabel('Server port').fill(String(await freePort()));
  await server.getByTestId('api-switch').click();
  const urlText = server.getByTestId('api-url');
  await expect(urlText).toHaveText(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
  await expect(server.getByTestId('api-exposed-warning')).toHaveCount(0);
  const baseURL = (await urlText.textContent())!;
  await server.getByTestId('copy-api-key').click();
  await expect(server.getByTestId('copy-api-key')).toHaveText('Copied');
  const apiKey = await clipboard(page);
  expect(apiKey).toMatch(/^quip-/);
  await server.getByRole('button', { name: 'Show' }).click();
  await expect(server.getByTestId('api-key')).toHaveText(apiKey);

  const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
  const ids = (await client.models.list()).data.map((m) => m.id);
  expect(ids).toContain('stories260k');
  const completion = await client.chat.completions.create({ model: 'stories260k', messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 8, temperature: 0 });
  expect(completion.choices[0]!.message.content!.length).toBeGreaterThan(0);
  expect(completion.usage!.completion_tokens).toBeGreaterThan(0);
  const wrong = new OpenAI({ baseURL, apiKey: 'quip-not-the-key', maxRetries: 0 });
  await expect(wrong.models.list()).rejects.toMatchObject({ status: 401 });
  await expect(server.getByTestId('api-log-row')).toHaveCount(3);
  await expect(server.getByTestId('api-log-row').nth(1)).toContainText('POST /v1/chat/completions · stories260k');
  await expect(server.getByTestId('api-log-row').first()).toContainText('401');
  await server.scrollIntoViewIfNeeded();
  await page.screenshot({ path: testInfo.outputPath('chat-local-server.png') });

  // Off: the URL refuses connections.
  await server.getByTestId('api-switch').click();
  await expect(urlText).toHaveCount(0);
  await expect(fetch(`${baseURL}/models`)).rejects.toThrow();
});
