// @vitest-environment jsdom
// The Chat screen against the in-memory StudioApi: choose a model (originals and finished runs),
// stream a reply with Stop visible meanwhile, see tokens/s, split view with two models, saved chats;
// replies as Markdown (code blocks highlighted, with a copy button; HTML shown as text, never run),
// regenerate, edit and resend, a system prompt, the context meter and the context-full choice, the
// loaded models panel and the local server switch.
import { act, cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RunDetail as RunDetailSchema } from '../../../app/contract/index';
import { createFakeStudio, type FakeStudio } from '../api/fake';
import { stories260k } from '../api/fixtures';
import runsJson from '../api/fixtures/stories260k.runs.json';
import { App } from '../App';
import { resetUiState } from '../state/ui';

const DIR = stories260k.source.path;
const two = RunDetailSchema.parse(runsJson.two);

async function renderChat(): Promise<FakeStudio> {
  // The finished 2-bit run is a model folder too (the fake knows it by its path).
  const fake = createFakeStudio({ models: { [DIR]: stories260k, [two.dir]: { ...stories260k, source: { ...stories260k.source, path: two.dir } } }, runs: [two] });
  render(<App api={fake.api} />);
  fireEvent.change(screen.getByLabelText(/Model folder/), { target: { value: DIR } });
  fireEvent.click(screen.getByRole('button', { name: 'Open' }));
  await waitFor(() => expect(screen.getByTestId('recent-model')).toBeTruthy());
  fireEvent.click(within(screen.getByRole('navigation', { name: 'Studio' })).getByRole('button', { name: 'Chat' }));
  return fake;
}

const streams = (fake: FakeStudio) => [...fake.streams.keys()];
const sent = (fake: FakeStudio) => fake.calls.filter((c) => c.channel === 'chat.send').map((c) => c.input as { messages: Array<{ role: string; content: string }>; sampling: { seed: number }; conversationId?: string });

/** Types a message, sends it and streams `reply` as the model's answer. */
async function turn(fake: FakeStudio, message: string, reply: string[]) {
  const before = sent(fake).length;
  fireEvent.change(screen.getByLabelText('Message'), { target: { value: message } });
  fireEvent.click(screen.getByRole('button', { name: 'Send' }));
  await waitFor(() => expect(sent(fake)).toHaveLength(before + 1));
  await waitFor(() => expect(streams(fake)).toHaveLength(1));
  act(() => fake.streamReply(streams(fake)[0]!, reply));
  await waitFor(() => expect(screen.queryByTestId('chat-stop')).toBeNull());
}

let clipboard: string[] = [];
beforeEach(() => {
  clipboard = [];
  Object.defineProperty(navigator, 'clipboard', { configurable: true, value: { writeText: vi.fn(async (t: string) => void clipboard.push(t)) } });
});

describe('Chat page', () => {
  beforeEach(() => resetUiState());
  afterEach(() => cleanup());

  it('offers the original and the finished runs, streams a reply with Stop, then shows tokens/s', async () => {
    const fake = await renderChat();
    const select = screen.getByLabelText('Model 1') as HTMLSelectElement;
    await waitFor(() => expect([...select.querySelectorAll('option')].map((o) => o.textContent)).toEqual(expect.arrayContaining(['stories260k', two.name])));
    fireEvent.change(select, { target: { value: two.dir } });
    fireEvent.change(screen.getByLabelText('Message'), { target: { value: 'Once upon a time' } });
    fireEvent.click(screen.getByRole('button', { name: 'Send' }));
    await waitFor(() => expect(streams(fake)).toHaveLength(1));
    expect(screen.getByTestId('chat-stop')).toBeTruthy();
    expect((fake.calls.find((c) => c.channel === 'chat.send')!.input as { modelDir: string }).modelDir).toBe(two.dir);
    act(() => fake.streamReply(streams(fake)[0]!, [' there', ' was', ' a', ' cat.']));
    await waitFor(() => expect(screen.getByTestId('chat-assistant').textContent).toContain('there was a cat.'));
    expect(screen.getByTestId('chat-assistant').textContent).toMatch(/tokens\/s/);
    expect(screen.queryByTestId('chat-stop')).toBeNull();
    await waitFor(() => expect(screen.getAllByTestId('saved-chat')).toHaveLength(1));
  });

  it('split view asks both models with one message', async () => {
    const fake = await renderChat();
    fireEvent.click(screen.getByTestId('split-view'));
    await waitFor(() => expect(screen.getAllByTestId('chat-pane')).toHaveLength(2));
    fireEvent.change(screen.getByLabelText('Model 2'), { target: { value: two.dir } });
    fireEvent.change(screen.getByLabelText('Message'), { target: { value: 'Hello' } });
    fireEvent.click(screen.getByRole('button', { name: 'Send' }));
    await waitFor(() => expect(streams(fake)).toHaveLength(2));
    const asked = fake.calls.filter((c) => c.channel === 'chat.send').map((c) => (c.input as { modelDir: string }).modelDir);
    expect(asked.sort()).toEqual([DIR, two.dir].sort());
    act(() => {
      for (const s of streams(fake)) fake.streamReply(s, ['hi']);
    });
    await waitFor(() => expect(screen.getAllByTestId('chat-assistant')).toHaveLength(2));
  });

  it('renders a reply as Markdown: a code block is highlighted and its copy button copies the code', async () => {
    const fake = await renderChat();
    await turn(fake, 'Show me code', ['Here:\n\n', '```js\nconst x = 1;\nconsole.log("hi");\n```\n', '\nand **bold** with `inline`.']);
    const reply = screen.getByTestId('chat-assistant');
    const block = within(reply).getByTestId('code-block');
    expect(block.querySelector('code')!.textContent).toBe('const x = 1;\nconsole.log("hi");');
    expect(block.querySelector('.hljs-keyword')?.textContent).toBe('const');
    expect(reply.querySelector('strong')!.textContent).toBe('bold');
    expect(reply.textContent).not.toContain('```');
    fireEvent.click(within(block).getByRole('button', { name: 'Copy code' }));
    await waitFor(() => expect(clipboard).toEqual(['const x = 1;\nconsole.log("hi");']));
    expect(within(block).getByRole('button', { name: 'Copy code' }).textContent).toBe('Copied');
    // Copy text copies the whole reply as written.
    fireEvent.click(within(reply).getByRole('button', { name: 'Copy text' }));
    await waitFor(() => expect(clipboard.at(-1)).toContain('```js'));
  });

  it('shows HTML in model output as text and never runs it', async () => {
    const fake = await renderChat();
    const evil = '<img src="x" onerror="window.__pwned = 1"><script>window.__pwned = 2</script><b>bold?</b> [x](javascript:alert(1))';
    await turn(fake, 'Say HTML', [evil]);
    const reply = screen.getByTestId('chat-assistant');
    expect(reply.querySelector('img, script, b')).toBeNull();
    expect(reply.textContent).toContain('<script>window.__pwned = 2</script>');
    expect(reply.textContent).toContain('<img src="x" onerror="window.__pwned = 1">');
    // A javascript: link loses its address.
    expect(reply.querySelector('a')?.getAttribute('href') ?? '').not.toMatch(/javascript/i);
    expect((window as { __pwned?: number }).__pwned).toBeUndefined();
  });

  it('regenerate asks again for the last reply with the same messages and a new seed', async () => {
    const fake = await renderChat();
    await turn(fake, 'Hello', ['Hi there.']);
    await turn(fake, 'Tell a story', ['Once upon a time.']);
    const before = sent(fake).at(-1)!;
    fireEvent.click(screen.getByTestId('regenerate'));
    await waitFor(() => expect(sent(fake)).toHaveLength(3));
    const again = sent(fake).at(-1)!;
    expect(again.messages).toEqual(before.messages);
    expect(again.messages.map((m) => m.content)).toEqual(['Hello', 'Hi there.', 'Tell a story']);
    expect(again.sampling.seed).not.toBe(before.sampling.seed);
    expect(again.conversationId).toBe(before.conversationId);
    act(() => fake.streamReply(streams(fake)[0]!, ['A new story.']));
    await waitFor(() => expect(screen.getAllByTestId('chat-assistant').at(-1)!.textContent).toContain('A new story.'));
    expect(screen.getAllByTestId('chat-assistant')).toHaveLength(2);
    expect(screen.queryByText('Once upon a time.')).toBeNull();
  });

  it('edit and resend replaces a user message and what followed it', async () => {
    const fake = await renderChat();
    await turn(fake, 'Hello', ['Hi there.']);
    await turn(fake, 'Tell a story', ['Once upon a time.']);
    fireEvent.click(screen.getAllByTestId('edit-message')[0]!);
    fireEvent.change(screen.getByLabelText('Edited text'), { target: { value: 'Good morning' } });
    fireEvent.click(within(screen.getAllByTestId('chat-user')[0]!).getByRole('button', { name: 'Send' }));
    await waitFor(() => expect(sent(fake)).toHaveLength(3));
    expect(sent(fake).at(-1)!.messages).toEqual([{ role: 'user', content: 'Good morning' }]);
    act(() => fake.streamReply(streams(fake)[0]!, ['Morning!']));
    await waitFor(() => expect(screen.getAllByTestId('chat-assistant')).toHaveLength(1));
    expect(screen.getAllByTestId('chat-user').map((m) => m.querySelector('.chat-text')!.textContent)).toEqual(['Good morning']);
  });

  it('sends the system prompt first with every message and saves it with the chat', async () => {
    const fake = await renderChat();
    fireEvent.click(screen.getByTestId('system-prompt-toggle'));
    fireEvent.change(screen.getByLabelText('System prompt'), { target: { value: 'You are a pirate.' } });
    await turn(fake, 'Hello', ['Arr.']);
    await turn(fake, 'Again', ['Arr arr.']);
    expect(sent(fake).map((c) => c.messages[0])).toEqual([
      { role: 'system', content: 'You are a pirate.' },
      { role: 'system', content: 'You are a pirate.' },
    ]);
    expect(sent(fake)[1]!.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    await waitFor(() => expect([...fake.chats.values()][0]?.systemPrompt).toBe('You are a pirate.'));
    // The context meter shows the tokens used of the model's context.
    expect(screen.getByTestId('context-meter').textContent).toMatch(/\d+ \/ 512 tokens/);
  });

  it('says when a message would not fit the context, sends nothing, and offers a new chat or dropping the oldest turns', async () => {
    const fake = await renderChat();
    await turn(fake, 'one two three four five', ['six seven']);
    await turn(fake, 'eight nine', ['ten']);
    fake.context.length = 20;
    fireEvent.change(screen.getByLabelText('Message'), { target: { value: 'eleven twelve thirteen fourteen' } });
    fireEvent.click(screen.getByRole('button', { name: 'Send' }));
    const warning = await screen.findByTestId('context-full');
    // 2+5, 2+2, 2+2, 2+1, 2+4 = 24 tokens by the fake's count, over 20.
    expect(warning.textContent).toContain('24 tokens');
    expect(warning.textContent).toContain('at most 20');
    expect(sent(fake)).toHaveLength(2);
    expect(screen.getAllByTestId('chat-user')).toHaveLength(2);
    fireEvent.click(within(warning).getByRole('button', { name: 'Drop oldest turns' }));
    await waitFor(() => expect(sent(fake)).toHaveLength(3));
    expect(sent(fake)[2]!.messages.map((m) => m.content)).toEqual(['eight nine', 'ten', 'eleven twelve thirteen fourteen']);
    expect(screen.queryByTestId('context-full')).toBeNull();
    act(() => fake.streamReply(streams(fake)[0]!, ['fifteen']));
    await waitFor(() => expect(screen.queryByTestId('chat-stop')).toBeNull());

    // New chat: the message goes to a fresh conversation.
    fake.context.length = 12;
    fireEvent.change(screen.getByLabelText('Message'), { target: { value: 'sixteen seventeen' } });
    fireEvent.click(screen.getByRole('button', { name: 'Send' }));
    fireEvent.click(within(await screen.findByTestId('context-full')).getByRole('button', { name: 'New chat' }));
    await waitFor(() => expect(sent(fake)).toHaveLength(4));
    expect(sent(fake)[3]!.messages).toEqual([{ role: 'user', content: 'sixteen seventeen' }]);
  });

  it('lists the loaded models with their memory and unloads one', async () => {
    const fake = await renderChat();
    await turn(fake, 'Hello', ['Hi.']);
    const panel = screen.getByTestId('loaded-models');
    await waitFor(() => expect(within(panel).getAllByTestId('loaded-model')).toHaveLength(1));
    expect(within(panel).getByTestId('loaded-model').textContent).toContain('64.0 MiB');
    fireEvent.click(within(panel).getByRole('button', { name: /^Unload / }));
    await waitFor(() => expect(within(panel).queryAllByTestId('loaded-model')).toHaveLength(0));
    expect(fake.calls.some((c) => c.channel === 'models.unload')).toBe(true);
    fireEvent.change(within(panel).getByTestId('idle-unload-minutes'), { target: { value: '5' } });
    fireEvent.blur(within(panel).getByTestId('idle-unload-minutes'));
    await waitFor(() => expect(fake.calls.find((c) => c.channel === 'settings.update')?.input).toEqual({ idleUnloadMinutes: 5 }));
  });

  it('the local server switch starts it, shows its URL, copies its key, logs requests, and stops it', async () => {
    const fake = await renderChat();
    const panel = await screen.findByTestId('local-server');
    fireEvent.change(within(panel).getByLabelText('Server port'), { target: { value: '18080' } });
    fireEvent.click(within(panel).getByTestId('api-switch'));
    await waitFor(() => expect(within(panel).getByTestId('api-url').textContent).toBe('http://127.0.0.1:18080/v1'));
    expect(fake.calls.find((c) => c.channel === 'api.set')!.input).toEqual({ enabled: true, port: 18080, host: '127.0.0.1', cors: null });
    expect(within(panel).queryByTestId('api-exposed-warning')).toBeNull();
    fireEvent.click(within(panel).getByTestId('copy-api-key'));
    await waitFor(() => expect(clipboard).toEqual([fake.apiServer.apiKey]));
    act(() => fake.apiRequest({ model: 'stories260k', completionTokens: 7 }));
    await waitFor(() => expect(within(panel).getAllByTestId('api-log-row')).toHaveLength(1));
    expect(within(panel).getByTestId('api-log-row').textContent).toContain('POST /v1/chat/completions · stories260k');
    fireEvent.click(within(panel).getByTestId('api-switch'));
    await waitFor(() => expect(within(panel).queryByTestId('api-url')).toBeNull());
    // Other devices only when asked, with a warning.
    fireEvent.click(within(panel).getByTestId('api-everywhere'));
    expect(within(panel).getByTestId('api-exposed-warning').textContent).toContain('anyone who can reach it');
  });
});
