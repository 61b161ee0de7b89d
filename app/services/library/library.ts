// What the studio remembers between launches, in the studio home shared by every face: the recently
// opened models and a few settings. Files are written atomically; a damaged file is set aside
// (renamed *.damaged-<time>) and reported once instead of breaking the studio.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

import { RecentModel, Settings } from '../../contract/channels.js';
import { writeJsonAtomic } from '../../util/atomic-file.js';
import { studioHome } from '../../util/paths.js';

export const RECENT_FILE = 'recent-models.json';
export const SETTINGS_FILE = 'settings.json';
const MAX_RECENT = 30;

const RecentFile = z.object({ version: z.literal(1), models: z.array(RecentModel) });

export class Library {
  readonly home: string;
  /** Writes of this process go one after another, so two quick opens do not lose one. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(home: string = studioHome(), private readonly warn: (message: string) => void = (m) => console.warn(m)) {
    this.home = home;
  }

  private file(name: string) {
    return path.join(this.home, name);
  }

  private async readJson<T>(name: string, schema: z.ZodType<T>, empty: T): Promise<T> {
    const file = this.file(name);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return empty;
      throw err;
    }
    let parsed: z.ZodSafeParseResult<T>;
    try {
      parsed = schema.safeParse(JSON.parse(text));
    } catch {
      parsed = { success: false } as z.ZodSafeParseResult<T>;
    }
    if (parsed.success) return parsed.data;
    const aside = `${file}.damaged-${Date.now()}`;
    await fs.rename(file, aside).catch(() => {});
    this.warn(`${file} was damaged and has been moved to ${aside}; starting from an empty one.`);
    return empty;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }

  async recent(): Promise<RecentModel[]> {
    return (await this.readJson(RECENT_FILE, RecentFile, { version: 1, models: [] })).models;
  }

  /** Puts a model at the top of the recent list (once per folder). */
  remember(model: Omit<RecentModel, 'openedAt'> & { openedAt?: string }): Promise<RecentModel[]> {
    return this.serial(async () => {
      const entry = RecentModel.parse({ ...model, path: path.resolve(model.path), openedAt: model.openedAt ?? new Date().toISOString() });
      const models = [entry, ...(await this.recent()).filter((m) => m.path !== entry.path)].slice(0, MAX_RECENT);
      await writeJsonAtomic(this.file(RECENT_FILE), { version: 1, models });
      return models;
    });
  }

  forget(modelPath: string): Promise<RecentModel[]> {
    return this.serial(async () => {
      const target = path.resolve(modelPath);
      const models = (await this.recent()).filter((m) => m.path !== target);
      await writeJsonAtomic(this.file(RECENT_FILE), { version: 1, models });
      return models;
    });
  }

  async settings(): Promise<Settings> {
    return this.readJson(SETTINGS_FILE, Settings, Settings.parse({}));
  }

  updateSettings(patch: Partial<Settings>): Promise<Settings> {
    return this.serial(async () => {
      const changes = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
      const next = Settings.parse({ ...(await this.settings()), ...changes });
      await writeJsonAtomic(this.file(SETTINGS_FILE), next);
      return next;
    });
  }
}
