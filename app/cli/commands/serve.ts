// `quip serve <model>... [--port N] [--host H] [--api-key K] [--threads T] [--cors ORIGIN]`: the
// OpenAI-compatible local API over the given model folders (ids: their folder names), each loaded
// into its own long-lived job process. Prints the URL and the key (a random one unless given);
// Ctrl-C stops the server and unloads the models.
import path from 'node:path';

import type { Command } from 'commander';

import { formatBytes } from '../../domain/format.js';
import { startApiServer, randomApiKey, type ApiModel } from '../../services/api/server.js';
import { resolveModelDir } from '../../services/hub/index.js';
import { JobClient } from '../../services/jobs/client.js';
import { nodeJobProcesses } from '../../services/jobs/node-process.js';
import { ModelManager } from '../../services/models/manager.js';
import { UserError } from '../../util/errors.js';
import { intOption } from '../options.js';

/** Model ids from folder names; a repeated name gets -2, -3, ... */
export function modelIds(dirs: string[]): ApiModel[] {
  const seen = new Map<string, number>();
  return dirs.map((dir) => {
    const base = path.basename(dir);
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    return { id: n === 1 ? base : `${base}-${n}`, dir, created: Math.floor(Date.now() / 1000) };
  });
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('Serve models over an OpenAI-compatible API (GET /v1/models, POST /v1/chat/completions, POST /v1/completions)')
    .argument('<model...>', 'model folders (or hub ids); each is served under its folder name')
    .option('--port <n>', 'port (0: any free one)', '8080')
    .option('--host <address>', 'address to listen on; anything but 127.0.0.1 / localhost is reachable from other machines', '127.0.0.1')
    .option('--api-key <key>', 'the key clients send as "Authorization: Bearer <key>" (default: a random one, printed)')
    .option('--threads <t>', 'threads per model (default: all cores)')
    .option('--cors <origin>', "allow browsers from this origin ('*' for any) to call the API")
    .option('--idle-minutes <m>', 'unload a model unused this long (0: never)', '0')
    .action(async (modelArgs: string[], opts: Record<string, string | undefined>) => {
      const threads = intOption(opts.threads, '--threads');
      const port = intOption(opts.port, '--port', 0) ?? 8080;
      const idle = intOption(opts.idleMinutes, '--idle-minutes', 0) ?? 0;
      const dirs: string[] = [];
      for (const m of modelArgs) dirs.push((await resolveModelDir(m)).dir);
      const listed = modelIds(dirs);
      const apiKey = opts.apiKey ?? process.env.QUIP_API_KEY ?? randomApiKey();
      if (apiKey.length < 8) throw new UserError('--api-key must be at least 8 characters long.', 'BAD_SETTING');

      const jobs = new JobClient({ spawn: nodeJobProcesses(), maxProcesses: Number.MAX_SAFE_INTEGER });
      const models = new ModelManager({ jobs, threads: async () => threads, idleMs: idle * 60_000, log: (m) => process.stderr.write(`quip serve: ${m}\n`) });
      let stopping = false;
      const stop = async (code: number) => {
        if (stopping) process.exit(130);
        stopping = true;
        process.stderr.write('\nquip serve: stopping (unloading the models) ...\n');
        await server?.close();
        await models.close();
        await jobs.shutdown();
        process.exit(code);
      };
      process.on('SIGINT', () => void stop(0));
      process.on('SIGTERM', () => void stop(0));

      for (const m of listed) {
        process.stderr.write(`quip serve: loading ${m.id} (${m.dir})\n`);
        const info = await models.load(m.dir);
        process.stderr.write(`quip serve: ${m.id} ready: context ${info.contextLength} tokens, resident ${info.residentBytes === null ? 'unknown' : formatBytes(info.residentBytes)}\n`);
      }
      let server: Awaited<ReturnType<typeof startApiServer>> | undefined;
      server = await startApiServer({
        models,
        apiKey,
        host: opts.host,
        port,
        cors: opts.cors ?? null,
        listModels: () => listed,
        onRequest: (r) =>
          process.stderr.write(
            `${r.at} ${r.method} ${r.path} ${r.status} ${r.ms.toFixed(0)} ms${r.model ? ` ${r.model}` : ''}${r.completionTokens !== undefined ? ` ${r.promptTokens}+${r.completionTokens} tokens` : ''}${r.error ? ` (${r.error})` : ''}\n`,
          ),
      });
      if (server.exposed) {
        process.stderr.write(`quip serve: WARNING: listening on ${opts.host}, reachable from other machines on the network. Anyone with the key can use the models.\n`);
      }
      process.stdout.write(
        [
          `OpenAI-compatible API: ${server.baseUrl}`,
          `API key: ${apiKey}`,
          `Models: ${listed.map((m) => m.id).join(', ')}`,
          `Try: curl ${server.baseUrl}/chat/completions -H "Authorization: Bearer ${apiKey}" -H "Content-Type: application/json" -d '{"model":"${listed[0].id}","messages":[{"role":"user","content":"Hello"}]}'`,
          'Ctrl-C stops the server.',
          '',
        ].join('\n'),
      );
      // Serve until Ctrl-C.
      await new Promise<never>(() => {});
    });
}
