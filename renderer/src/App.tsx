import type { StudioApi } from '../../app/contract/index';
import { Nav } from './components/Nav';
import { StatusBar } from './components/StatusBar';
import { ModelsPage } from './pages/ModelsPage';
import { StudioProvider } from './state/context';
import { useNavigation, type PageId } from './state/ui';

/** Screens by id; the quantization job adds its run, compare and chat screens here. */
const PAGES: Partial<Record<PageId, () => React.JSX.Element>> = {
  models: ModelsPage,
};

function CurrentPage() {
  const page = useNavigation((s) => s.page);
  const Page = PAGES[page] ?? ModelsPage;
  return <Page />;
}

export function App({ api }: { api: StudioApi }) {
  return (
    <StudioProvider api={api}>
      <div className="shell">
        <Nav />
        <main className="main">
          <CurrentPage />
        </main>
        <StatusBar />
      </div>
    </StudioProvider>
  );
}
