// UI-only state: where the person is and what they are typing. Nothing here comes from the API
// (that lives in ./studio.ts), so these stores are small and global.
import { create } from 'zustand';

/** Screens of the studio ('run' is one run, opened from Runs or New run). */
export type PageId = 'models' | 'new-run' | 'runs' | 'run' | 'compare' | 'chat';

interface NavigationState {
  page: PageId;
  go(page: PageId): void;
}

export const useNavigation = create<NavigationState>()((set) => ({
  page: 'models',
  go: (page) => set({ page }),
}));

interface ModelsPageState {
  /** The folder path typed in the browser face's Open field. */
  pathDraft: string;
  /** The text in the hub search field. */
  queryDraft: string;
  setPathDraft(v: string): void;
  setQueryDraft(v: string): void;
}

export const useModelsPage = create<ModelsPageState>()((set) => ({
  pathDraft: '',
  queryDraft: '',
  setPathDraft: (pathDraft) => set({ pathDraft }),
  setQueryDraft: (queryDraft) => set({ queryDraft }),
}));

interface NewRunContextState {
  /**
   * The model New run starts with: the one the person came from (the inspection on Models, "Quantize
   * this model", the source of the run on screen) or last chose there; null: the open inspection.
   */
  modelDir: string | null;
  setModelDir(modelDir: string | null): void;
}

export const useNewRun = create<NewRunContextState>()((set) => ({
  modelDir: null,
  setModelDir: (modelDir) => set({ modelDir }),
}));

/** Back to the first screen with empty fields (tests, and a fresh window). */
export function resetUiState() {
  useNavigation.setState({ page: 'models' });
  useModelsPage.setState({ pathDraft: '', queryDraft: '' });
  useNewRun.setState({ modelDir: null });
}
