// @vitest-environment jsdom
// The Chat screen against the in-memory StudioApi: choose a model (originals and finished runs),
// stream a reply with Stop visible meanwhile, see tokens/s, split view with two models, saved chats.
import { act, cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
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
});
