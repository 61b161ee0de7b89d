// Hands the StudioApi and its store to the component tree; one of each per window.
import { createContext, useContext, useEffect, useState, type ReactNode } from 'react';
import { useStore } from 'zustand';
import type { StudioApi } from '../../../app/contract/index';
import { createStudioStore, type StudioState, type StudioStore } from './studio';

const StudioContext = createContext<StudioStore | null>(null);

export function StudioProvider({ api, children }: { api: StudioApi; children: ReactNode }) {
  const [store] = useState(() => createStudioStore(api));
  useEffect(() => store.getState().start(), [store]);
  return <StudioContext.Provider value={store}>{children}</StudioContext.Provider>;
}

export function useStudioStore(): StudioStore {
  const store = useContext(StudioContext);
  if (!store) throw new Error('useStudio needs a <StudioProvider> above it.');
  return store;
}

export function useStudio<T>(selector: (s: StudioState) => T): T {
  return useStore(useStudioStore(), selector);
}
