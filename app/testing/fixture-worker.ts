// A job process for the job client's tests: the real kinds plus kinds that misbehave on purpose
// (hang, ignore cancel, crash, run out of memory), served by the same runtime as app/worker/main.ts.
import { z } from 'zod';

import { jobKinds } from '../worker/kinds.js';
import { cancelledError, defineJobKind, NoEvents, runWorker } from '../worker/runtime.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

runWorker({
  ...jobKinds,
  /** Reports progress, then waits for input {finish: value} (-> result) or a cancel. */
  hold: defineJobKind({
    params: z.object({ steps: z.number().int().min(0) }),
    events: NoEvents,
    result: z.object({ received: z.unknown(), pid: z.number() }),
    run: async ({ steps }, ctx) => {
      for (let i = 0; i < steps; i++) ctx.progress({ fraction: (i + 1) / steps, message: `step ${i + 1}` });
      ctx.log('holding');
      return new Promise((resolve, reject) => {
        ctx.onInput((data) => resolve({ received: data, pid: process.pid }));
        ctx.signal.addEventListener('abort', () => reject(cancelledError()));
      });
    },
  }),
  /** Never stops by itself: cancel must fall back to killing the process. */
  ignoreCancel: defineJobKind({
    params: z.object({}),
    events: NoEvents,
    result: z.object({}),
    run: async (_p, ctx) => {
      process.on('SIGTERM', () => {}); // even ignores the polite kill
      ctx.log('ignoring cancel and SIGTERM');
      for (;;) await sleep(50);
    },
  }),
  crash: defineJobKind({
    params: z.object({ how: z.enum(['abort', 'throw', 'exit']) }),
    events: NoEvents,
    result: z.object({}),
    run: async ({ how }) => {
      await sleep(20);
      if (how === 'abort') process.abort();
      if (how === 'exit') process.exit(3);
      setTimeout(() => {
        throw new Error('boom in a timer');
      }, 0);
      await sleep(10_000);
      return {};
    },
  }),
  /** Grows the JS heap until V8 gives up (run with a small --max-old-space-size). */
  allocate: defineJobKind({
    params: z.object({}),
    events: NoEvents,
    result: z.object({}),
    run: async () => {
      const hoard: number[][] = [];
      for (;;) hoard.push(new Array(1 << 16).fill(hoard.length));
    },
  }),
  /** Sends one event of its schema, then one that breaks it: the bug fails the job, the bad event never leaves. */
  badEvent: defineJobKind({
    params: z.object({}),
    events: z.object({ step: z.number().int() }),
    result: z.object({}),
    run: async (_p, ctx) => {
      ctx.progress({ data: { step: 1 } });
      ctx.progress({ data: { step: 'two' } as unknown as { step: number } });
      return {};
    },
  }),
  /** Returns a value that breaks its own result schema: a bug must be reported, not passed on. */
  badResult: defineJobKind({
    params: z.object({}),
    events: NoEvents,
    result: z.object({ n: z.number() }),
    run: async () => ({ n: 'not a number' }) as unknown as { n: number },
  }),
});
