// The "Local server" switch: the OpenAI-compatible API over the studio's models (GET /v1/models,
// POST /v1/chat/completions, /v1/completions) for editors, Open WebUI and scripts using the `openai`
// client. Shows its URL, the API key (copy, new key) and the request log. It listens on 127.0.0.1;
// other machines only when the person ticks the box, with a warning.
import { useEffect, useState } from 'react';
import { useChat } from '../../state/runs-context';
import { CopyButton } from './CopyButton';

const EVERYWHERE = '0.0.0.0';

function time(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString('en-GB', { hour12: false });
}

export function LocalServerPanel() {
  const server = useChat((s) => s.server);
  const loadServer = useChat((s) => s.loadServer);
  const setServer = useChat((s) => s.setServer);
  const regenerateKey = useChat((s) => s.regenerateKey);
  const [port, setPort] = useState('');
  const [everywhere, setEverywhere] = useState(false);
  const [cors, setCors] = useState('');
  const [showKey, setShowKey] = useState(false);
  const [switching, setSwitching] = useState(false);

  useEffect(() => void loadServer(), [loadServer]);
  useEffect(() => {
    if (!server) return;
    setPort(String(server.port));
    setEverywhere(server.host === EVERYWHERE);
    setCors(server.cors ?? '');
  }, [server?.port, server?.host, server?.cors]);

  if (!server) return null;
  const portNumber = Number(port);
  const portOk = Number.isInteger(portNumber) && portNumber >= 1 && portNumber <= 65535;
  const toggle = async (on: boolean) => {
    setSwitching(true);
    try {
      await setServer(
        on ? { enabled: true, port: portOk ? portNumber : undefined, host: everywhere ? EVERYWHERE : '127.0.0.1', cors: cors.trim() || null } : { enabled: false },
      );
    } finally {
      setSwitching(false);
    }
  };
  const masked = `${server.apiKey.slice(0, 5)}${'•'.repeat(12)}${server.apiKey.slice(-4)}`;

  return (
    <section className="side-panel" data-testid="local-server" aria-label="Local server">
      <label className="switch-row">
        <input type="checkbox" role="switch" checked={server.running} disabled={switching || (!server.running && !portOk)} onChange={(e) => void toggle(e.target.checked)} data-testid="api-switch" />
        <span className="switch-label side-panel-title">Local server</span>
      </label>
      <div className="muted side-panel-hint">OpenAI-compatible API for other tools: editors, Open WebUI, scripts using the openai client.</div>
      {server.error && (
        <div className="error-message" role="alert" data-testid="api-error">
          {server.error}
        </div>
      )}
      {server.running && server.baseUrl ? (
        <div className="api-row">
          <span className="api-label">URL</span>
          <code className="api-value mono" data-testid="api-url">
            {server.baseUrl}
          </code>
          <CopyButton text={server.baseUrl} ariaLabel="Copy URL" />
        </div>
      ) : (
        <div className="api-settings">
          <label className="panel-field">
            <span>Port</span>
            <input className="input mono" type="number" min={1} max={65535} value={port} onChange={(e) => setPort(e.target.value)} aria-label="Server port" data-testid="api-port" />
          </label>
          <label className="panel-field" title="Web pages on this origin may call the server from a browser (Access-Control-Allow-Origin). Empty: none may.">
            <span>CORS origin</span>
            <input className="input mono api-cors" value={cors} placeholder="none" onChange={(e) => setCors(e.target.value)} aria-label="CORS origin" data-testid="api-cors" />
          </label>
          <label className="check-row">
            <input type="checkbox" checked={everywhere} onChange={(e) => setEverywhere(e.target.checked)} data-testid="api-everywhere" />
            <span>Let other devices on the network connect</span>
          </label>
        </div>
      )}
      {(server.exposed || (!server.running && everywhere)) && (
        <div className="api-warning" role="note" data-testid="api-exposed-warning">
          {server.running ? 'Listening on every network of this machine' : 'It will listen on every network of this machine'}: anyone who can reach it and has the key can use your models. Keep the key private; turn this off on networks you do not trust.
        </div>
      )}
      <div className="api-row">
        <span className="api-label">API key</span>
        <code className="api-value mono" data-testid="api-key">
          {showKey ? server.apiKey : masked}
        </code>
        <button type="button" className="btn btn-ghost btn-small" onClick={() => setShowKey(!showKey)}>
          {showKey ? 'Hide' : 'Show'}
        </button>
        <CopyButton text={server.apiKey} ariaLabel="Copy API key" testId="copy-api-key" />
      </div>
      <button type="button" className="btn btn-ghost btn-small api-new-key" onClick={() => void regenerateKey()}>
        New key{server.running ? ' (clients must use it)' : ''}
      </button>
      <div className="api-log" data-testid="api-log" aria-label="Request log">
        <div className="api-log-title muted">Request log</div>
        {server.log.length === 0 ? (
          <div className="muted side-panel-empty">No requests yet.</div>
        ) : (
          <ul>
            {server.log.slice(0, 30).map((r, i) => (
              <li key={`${r.at}-${i}`} className={`api-log-row ${r.status >= 400 ? 'api-log-bad' : ''}`} data-testid="api-log-row" title={r.error ?? undefined}>
                <span className="mono">{time(r.at)}</span>
                <span className="mono">{r.status}</span>
                <span className="api-log-path">
                  {r.method} {r.path}
                  {r.model ? ` · ${r.model}` : ''}
                </span>
                <span className="mono muted">
                  {Math.round(r.ms)} ms{r.completionTokens !== undefined ? ` · ${r.completionTokens} tok` : ''}
                </span>
              </li>
            ))}
          </ul>
        )}
      </div>
    </section>
  );
}
