// Resident memory of another process. Node's process.memoryUsage() only measures the calling process,
// so on Linux the studio reads /proc/<pid>/status (VmRSS); elsewhere the model host reports its own
// (app/worker/model-host.ts answers a `memory` request with process.memoryUsage.rss()).
import { promises as fs } from 'node:fs';

/** VmRSS of a process in bytes from procfs; null where there is no procfs or the process is gone. */
export async function procResidentBytes(pid: number): Promise<number | null> {
  if (process.platform !== 'linux') return null;
  try {
    const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}
