// `quip bench hub [--mb N] [--repeats N] [--json]`: download throughput of our resumable downloader
// (Range-capable streaming, hashing while it arrives, fsync, rename into the HF cache layout) beside a
// bare fetch piped into a file, both from a mock hub on 127.0.0.1 serving the same synthetic model in
// the same run. The gap is the price of verification and of never leaving a torn file.
import { randomBytes } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Command } from 'commander';
import { downloadModel } from '../services/hub/download.js';
import { startMockHub } from '../testing/mock-hub.js';

export interface HubBenchResult {
  bytes: number;
  repeats: number;
  /** Best of `repeats`, in bytes per second. */
  bareFetchBytesPerSec: number;
  downloaderBytesPerSec: number;
  ratio: number;
}

const now = () => Number(process.hrtime.bigint()) / 1e9;

export async function benchHubDownload(mb: number, repeats: number): Promise<HubBenchResult> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'quip-bench-hub-'));
  const repoDir = path.join(work, 'repo');
  await fs.mkdir(repoDir);
  const bytes = Math.round(mb * 1024 * 1024);
  await fs.writeFile(path.join(repoDir, 'config.json'), '{"model_type": "llama"}');
  await fs.writeFile(path.join(repoDir, 'model.safetensors'), randomBytes(bytes));
  const hub = await startMockHub({ repos: { 'bench/synthetic': { dir: repoDir } } });
  try {
    let bare = Infinity;
    let ours = Infinity;
    for (let r = 0; r < repeats; r++) {
      const out = path.join(work, `bare-${r}`);
      let t = now();
      const res = await fetch(`${hub.url}/bench/synthetic/resolve/main/model.safetensors`);
      await pipeline(Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>), createWriteStream(out));
      bare = Math.min(bare, now() - t);
      await fs.rm(out);

      const cacheDir = path.join(work, `cache-${r}`);
      t = now();
      // token '' and offline false: never send the user's HF_TOKEN to the mock, whatever the env says.
      await downloadModel('bench/synthetic', { endpoint: hub.url, cacheDir, token: '', offline: false });
      ours = Math.min(ours, now() - t);
      await fs.rm(cacheDir, { recursive: true });
    }
    return { bytes, repeats, bareFetchBytesPerSec: bytes / bare, downloaderBytesPerSec: bytes / ours, ratio: bare / ours };
  } finally {
    await hub.close();
    await fs.rm(work, { recursive: true, force: true });
  }
}

export function registerHubBench(bench: Command): void {
  bench
    .command('hub')
    .description('download throughput of the hub downloader beside a bare fetch into a file (mock hub on 127.0.0.1)')
    .option('--mb <n>', 'size of the synthetic weights file in MiB', '64')
    .option('--repeats <n>', 'runs of each, best kept', '3')
    .option('--json', 'print JSON')
    .action(async (opts: { mb: string; repeats: string; json?: boolean }) => {
      const r = await benchHubDownload(Math.max(1, Number(opts.mb) || 64), Math.max(1, Number(opts.repeats) || 3));
      if (opts.json) return console.log(JSON.stringify(r, null, 2));
      const mbs = (v: number) => `${(v / 1024 / 1024).toFixed(0)} MiB/s`;
      console.log(`hub download of ${(r.bytes / 1024 / 1024).toFixed(0)} MiB from 127.0.0.1, best of ${r.repeats}`);
      console.log(`  bare fetch piped to a file        ${mbs(r.bareFetchBytesPerSec)}`);
      console.log(`  downloader (sha256, fsync, cache) ${mbs(r.downloaderBytesPerSec)}  (${(r.ratio * 100).toFixed(0)}% of bare)`);
    });
}
