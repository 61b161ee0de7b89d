// Hands the runs and chat stores to the component tree, one of each per window (beside the studio
// store of ./context.tsx), and starts their event subscriptions.
import { createContext, useContext, useEffect, useState, type ReactNode } from 'react';
import { useStore } from 'zustand';
import type { StudioApi } from '../../../app/contract/index';
import '../styles/runs.css';
import { createChatStore, type ChatState, type ChatStore } from './chat';
import { createRunsStore, type RunsState, type RunsStore } from './runs';

interface Stores {
  api: StudioApi;
  runs: RunsStore;
  chat: ChatStore;
}

const RunsContext = createContext<Stores | null>(null);

export function RunsProvider({ api, children }: { api: StudioApi; children: ReactNode }) {
  const [stores] = useState<Stores>(() => ({ api, runs: createRunsStore(api), chat: createChatStore(api) }));
  useEffect(() => stores.runs.getState().start(), [stores]);
  useEffect(() => stores.chat.getState().start(), [stores]);
  return <RunsContext.Provider value={stores}>{children}</RunsContext.Provider>;
}

function useStores(): Stores {
  const s = useContext(RunsContext);
  if (!s) throw new Error('useRuns/useChat need a <RunsProvider> above them.');
  return s;
}

export const useRunsStore = () => useStores().runs;
export const useChatStore = () => useStores().chat;
export const useApi = () => useStores().api;

export function useRuns<T>(selector: (s: RunsState) => T): T {
  return useStore(useStores().runs, selector);
}

export function useChat<T>(selector: (s: ChatState) => T): T {
  return useStore(useStores().chat, selector);
}
