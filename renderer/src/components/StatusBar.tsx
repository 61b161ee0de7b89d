import { useEffect, useState } from 'react';
import { SERVER_STOPPED, type ConnectionState } from '../../../app/contract/api';
import type { AppInfo } from '../../../app/contract/channels';
import { useStudio } from '../state/context';
import { useApi } from '../state/runs-context';

const SIMD_LABEL: Record<AppInfo['simd'], string> = {
  avx512: 'AVX-512 int8 decode, AVX2 fast paths',
  avx2: 'AVX2 fast paths',
  neon: 'NEON fast paths',
  scalar: 'portable kernels (no SIMD)',
};

/** The browser face's connection to its server, as it changes (always 'connected' in the desktop app). */
function useConnection(): ConnectionState {
  const api = useApi();
  const [state, setState] = useState<ConnectionState>(() => api.connection?.state() ?? 'connected');
  useEffect(() => {
    if (!api.connection) return;
    setState(api.connection.state());
    return api.connection.on(setState);
  }, [api]);
  return state;
}

/** One line along the bottom: the machine the engine runs on and what is happening. */
export function StatusBar() {
  const info = useStudio((s) => s.info);
  const active = useStudio((s) => s.downloadOrder.filter((id) => s.downloads[id]?.state === 'running').length);
  const connection = useConnection();
  return (
    <footer className="status-bar" data-testid="status-bar" data-connection={connection}>
      {connection === 'disconnected' && info.status === 'ready' ? (
        <span className="status-item status-disconnected" role="alert" data-testid="status-disconnected">
          <span className="status-dot bad" />
          {SERVER_STOPPED}
        </span>
      ) : info.status === 'ready' ? (
        <>
          <span className="status-item" title="Connected to the studio">
            <span className="status-dot ok" />
            {info.value.face === 'electron' ? 'Desktop' : 'Browser'}
          </span>
          <span className="status-item" title="CPU the engine runs on" data-testid="status-cpu">
            {info.value.cpu}
          </span>
          <span className="status-item" data-testid="status-threads">
            {info.value.threads} threads
          </span>
          <span className="status-item">{SIMD_LABEL[info.value.simd]}</span>
          {active > 0 && <span className="status-item">{active === 1 ? '1 download' : `${active} downloads`}</span>}
          <span className="status-spacer" />
          <span className="status-item muted" title={`Studio home: ${info.value.studioHome}`}>
            v{info.value.version}
          </span>
        </>
      ) : info.status === 'error' ? (
        <span className="status-item">
          <span className="status-dot bad" />
          Not connected: {info.error.message}
        </span>
      ) : (
        <span className="status-item">
          <span className="status-dot" />
          Connecting…
        </span>
      )}
    </footer>
  );
}
