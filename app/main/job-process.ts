// Job processes in the desktop face: Electron utilityProcess (a Node process Chromium supervises),
// named by serviceName so child-process-gone tells us why it went (crashed / oom / killed).
import { app, utilityProcess, type Details } from 'electron';

import type { JobProcess, JobProcessFactory } from '../services/jobs/client.js';
import type { FromWorker } from '../worker/protocol.js';

const STDERR_TAIL = 8192;

/** The job process's environment: a packaged app drops QUIP_NATIVE_PATH, so its jobs load only the
 * addon shipped with it (app/engine/native.ts refuses the variable there too). */
function jobEnv(): NodeJS.ProcessEnv {
  if (!app.isPackaged) return process.env;
  const { QUIP_NATIVE_PATH: _dropped, ...env } = process.env;
  return env;
}

export function electronJobProcesses(workerPath: string): JobProcessFactory {
  const gone = new Map<string, Details>();
  app.on('child-process-gone', (_e, details) => {
    if (details.type === 'Utility' && details.name?.startsWith('QuIP# Studio job')) gone.set(details.name, details);
  });

  return ({ jobId, kind }) => {
    const serviceName = `QuIP# Studio job ${kind} ${jobId.slice(0, 8)}`;
    const child = utilityProcess.fork(workerPath, [], { serviceName, stdio: 'pipe', env: jobEnv() });
    let stderrTail = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL);
    });
    child.stdout?.resume();
    // V8's fatal errors (e.g. "Reached heap limit") come here before the exit.
    let fatal: string | undefined;
    child.on('error', (_type, location) => {
      fatal = location;
    });
    let exited = false;
    const proc: JobProcess = {
      get pid() {
        return child.pid;
      },
      send: (msg) => {
        if (!exited) child.postMessage(msg);
      },
      onMessage: (l) => child.on('message', (m: unknown) => l(m as FromWorker)),
      onExit: (l) =>
        child.once('exit', (code) => {
          exited = true;
          // child-process-gone may come just after exit: give it a moment before judging.
          setTimeout(() => {
            const details = gone.get(serviceName);
            gone.delete(serviceName);
            l({ code, signal: null, reason: details?.reason, stderrTail, fatal });
          }, 100);
        }),
      kill: (force) => {
        if (exited) return;
        if (force && child.pid !== undefined) {
          try {
            process.kill(child.pid, 'SIGKILL');
          } catch {
            child.kill();
          }
        } else child.kill();
      },
    };
    return proc;
  };
}
