// dist/server.mjs: the browser face. Run it (`node dist/server.mjs [--port N] [--home DIR]`) or import
// startServer from it (scripts/start.mjs, e2e).
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { startServer } from './server.js';

export { startServer, type ServerOptions, type StudioServer } from './server.js';

async function main() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      home: { type: 'string' },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`quip server: --port must be a whole number from 0 to 65535 (0 picks a free one), not "${values.port}".`);
    process.exit(2);
  }
  // The job processes inherit the environment, so they see the same home.
  if (values.home) process.env.QUIP_STUDIO_HOME = values.home;
  try {
    const server = await startServer({ port, home: values.home });
    console.log(`QuIP# Studio is open at ${server.url}`);
    const stop = () => void server.close().then(() => process.exit(0));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    console.error(code === 'EADDRINUSE' ? `quip server: port ${port} is in use; pick another with --port, or 0 for any free one.` : `quip server: ${(err as Error).message}`);
    process.exit(1);
  }
}

const entry = process.argv[1] ? realpathSync(process.argv[1]) : '';
if (entry === realpathSync(fileURLToPath(import.meta.url))) void main();
