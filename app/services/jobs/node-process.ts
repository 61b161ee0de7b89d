// Job processes under plain Node (the server and CLI faces): child_process.fork of dist/worker.mjs.
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

import { projectRoot } from '../../util/paths.js';
import type { FromWorker } from '../../worker/protocol.js';
import type { JobProcess, JobProcessFactory } from './client.js';

const STDERR_TAIL = 8192;

export function defaultWorkerPath(): string {
  return path.join(projectRoot(), 'dist', 'worker.mjs');
}

export interface NodeJobProcessOptions {
  workerPath?: string;
  /** Extra Node flags, e.g. --max-old-space-size. */
  execArgv?: string[];
  env?: NodeJS.ProcessEnv;
}

export function nodeJobProcesses(opts: NodeJobProcessOptions = {}): JobProcessFactory {
  const workerPath = opts.workerPath ?? defaultWorkerPath();
  return () => {
    if (!existsSync(workerPath)) throw new Error(`${workerPath} is missing. Run \`npm run build\` and try again.`);
    const child = fork(workerPath, [], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      execArgv: opts.execArgv ?? [],
      env: opts.env ?? process.env,
      serialization: 'advanced',
    });
    let stderrTail = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL);
      if (process.env.QUIP_DEBUG) process.stderr.write(chunk);
    });
    child.stdout?.on('data', (chunk: Buffer) => {
      if (process.env.QUIP_DEBUG) process.stdout.write(chunk);
    });
    let spawnError: Error | undefined;
    child.on('error', (err) => {
      spawnError = err;
    });
    const proc: JobProcess = {
      pid: child.pid,
      send: (msg) => {
        if (child.connected) child.send(msg);
      },
      onMessage: (l) => child.on('message', (m) => l(m as FromWorker)),
      onExit: (l) =>
        // 'close' comes after the IPC channel and stderr are drained, so a last message or the
        // out-of-memory text is in before we judge the exit.
        child.on('close', (code, signal) => l({ code, signal, stderrTail, reason: spawnError && child.pid === undefined ? 'launch-failed' : undefined })),
      kill: (force) => {
        if (child.exitCode === null && child.signalCode === null) child.kill(force ? 'SIGKILL' : 'SIGTERM');
      },
    };
    return proc;
  };
}
