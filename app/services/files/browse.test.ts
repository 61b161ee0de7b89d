// The file browser's listing against a folder tree made here: model folders marked, only the files
// being chosen, hidden entries never, and nothing outside the roots, however it is reached (a path, a
// "..", a symlink out).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { defaultRoots, listFolder } from './browse.js';

const base = mkdtempSync(path.join(os.tmpdir(), 'quip-browse-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const home = path.join(base, 'home');
const media = path.join(base, 'media');
const secret = path.join(base, 'etc');
function tree() {
  for (const d of [home, media, secret, path.join(home, 'models', 'tiny'), path.join(home, 'models', 'half'), path.join(home, '.cache', 'x'), path.join(media, 'usb')]) mkdirSync(d, { recursive: true });
  writeFileSync(path.join(home, 'models', 'tiny', 'config.json'), '{}');
  writeFileSync(path.join(home, 'models', 'tiny', 'model.safetensors'), 'x');
  writeFileSync(path.join(home, 'models', 'half', 'config.json'), '{}'); // no weights: a plain folder
  writeFileSync(path.join(home, 'models', 'small.gguf'), 'GGUF1234');
  writeFileSync(path.join(home, 'models', 'notes.txt'), 'hello');
  writeFileSync(path.join(home, 'models', 'picture.png'), 'png');
  writeFileSync(path.join(home, 'models', '.hidden.gguf'), 'x');
  writeFileSync(path.join(secret, 'passwd'), 'root');
  symlinkSync(secret, path.join(home, 'models', 'escape'));
  symlinkSync(path.join(media, 'usb'), path.join(home, 'models', 'usb-link'));
}
tree();
const roots = [
  { path: home, label: 'Home' },
  { path: media, label: 'Mounted volumes (/media)' },
  { path: path.join(base, 'missing'), label: 'Absent' },
];

describe('files.list', () => {
  it('lists folders (model folders marked) and the files being chosen; never hidden ones', async () => {
    const r = await listFolder({ dir: path.join(home, 'models'), choose: 'model-folder' }, { roots });
    expect(r.entries.map((e) => [e.name, e.kind])).toEqual([
      ['half', 'folder'],
      ['tiny', 'model-folder'],
      ['usb-link', 'folder'],
      ['small.gguf', 'gguf'],
    ]);
    expect(r.entries.find((e) => e.name === 'small.gguf')!.size).toBe(8);
    expect(r.parent).toBe(home);
    // Roots that do not exist are left out.
    expect(r.roots.map((x) => x.label)).toEqual(['Home', 'Mounted volumes (/media)']);
    const text = await listFolder({ dir: path.join(home, 'models'), choose: 'text' }, { roots });
    expect(text.entries.filter((e) => e.size !== null).map((e) => e.name)).toEqual(['notes.txt']);
  });

  it('starts at the home folder; a root has no parent', async () => {
    const r = await listFolder({ choose: 'model-folder' }, { roots });
    expect(r.dir).toBe(home);
    expect(r.parent).toBeNull();
    expect(r.entries.map((e) => e.name)).toEqual(['models']);
  });

  it('refuses anything outside the roots: a path, a "..", a symlink out', async () => {
    await expect(listFolder({ dir: secret, choose: 'gguf' }, { roots })).rejects.toMatchObject({ code: 'OUTSIDE_ROOTS', message: expect.stringContaining('outside the folders the studio shows') });
    await expect(listFolder({ dir: path.join(home, '..', 'etc'), choose: 'gguf' }, { roots })).rejects.toMatchObject({ code: 'OUTSIDE_ROOTS' });
    await expect(listFolder({ dir: path.join(home, 'models', 'escape'), choose: 'gguf' }, { roots })).rejects.toMatchObject({ code: 'OUTSIDE_ROOTS', message: expect.stringContaining(secret) });
    // A link to another root is followed; the listing names the real folder.
    const usb = await listFolder({ dir: path.join(home, 'models', 'usb-link'), choose: 'gguf' }, { roots });
    expect(usb.dir).toBe(path.join(media, 'usb'));
    await expect(listFolder({ dir: path.join(home, 'nope'), choose: 'gguf' }, { roots })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(listFolder({ dir: path.join(home, 'models', 'notes.txt'), choose: 'text' }, { roots })).rejects.toMatchObject({ code: 'NOT_A_FOLDER' });
  });

  it('the default roots: home, studio home, the Hugging Face cache and the platform mount points', () => {
    const linux = defaultRoots({ studioHome: '/s', hubCache: '/h', platform: 'linux', home: '/home/ann', user: 'ann' }).map((r) => r.path);
    expect(linux).toEqual(['/home/ann', '/s', '/h', '/media', '/mnt', '/run/media/ann']);
    expect(defaultRoots({ studioHome: '/s', hubCache: '/h', platform: 'darwin', home: '/Users/ann', user: 'ann' }).map((r) => r.path)).toContain('/Volumes');
  });
});
