import type { StudioApi } from '../../app/contract/index';
import { Nav } from './components/Nav';
import { StatusBar } from './components/StatusBar';
import { ChatPage } from './pages/ChatPage';
import { ComparePage } from './pages/ComparePage';
import { ModelsPage } from './pages/ModelsPage';
import { NewRunPage } from './pages/NewRunPage';
import { RunPage } from './pages/RunPage';
import { RunsPage } from './pages/RunsPage';
import { StudioProvider } from './state/context';
import { RunsProvider } from './state/runs-context';
import { useNavigation, type PageId } from './state/ui';

/**
 * Screens by id. Adding one: a component in pages/, a row here, and `pending: null` for its entry in
 * components/Nav.tsx; its server data goes into state/studio.ts (fed by requests and events), its
 * UI-only state into a small store in state/ui.ts.
 */
const PAGES: Partial<Record<PageId, () => React.JSX.Element>> = {
  models: ModelsPage,
  'new-run': NewRunPage,
  runs: RunsPage,
  run: RunPage,
  compare: ComparePage,
  chat: ChatPage,
};

function CurrentPage() {
  const page = useNavigation((s) => s.page);
  const Page = PAGES[page] ?? ModelsPage;
  return <Page />;
}

export function App({ api }: { api: StudioApi }) {
  return (
    <StudioProvider api={api}>
      <RunsProvider api={api}>
        <div className="shell">
          <Nav />
          <main className="main">
            <CurrentPage />
          </main>
          <StatusBar />
        </div>
      </RunsProvider>
    </StudioProvider>
  );
}
