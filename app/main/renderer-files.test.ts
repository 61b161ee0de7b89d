// The studio:// protocol's choice of file, without Electron: a URL that does not parse or decode is a
// 400 answer (it used to throw before the handler's try block), a path outside the renderer folder or
// another host is a 404, and the pages themselves resolve inside dist/renderer.
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { rendererTarget } from './renderer-files.js';

const root = path.resolve('/opt/studio/dist/renderer');

describe('studio:// requests', () => {
  it('serves files inside the renderer folder, index.html for /', () => {
    expect(rendererTarget(root, 'studio://app/')).toEqual({ file: path.join(root, 'index.html'), pathname: '/' });
    expect(rendererTarget(root, 'studio://app/assets/app%20x.js')).toEqual({ file: path.join(root, 'assets', 'app x.js'), pathname: '/assets/app%20x.js' });
  });

  it('answers 400 for a malformed URL or a path that does not percent-decode, instead of throwing', () => {
    for (const url of ['studio://app/%E0%A4%A', 'studio://app/%', 'not a url', 'studio://[::1']) {
      expect(() => rendererTarget(root, url), url).not.toThrow();
      expect(rendererTarget(root, url), url).toEqual({ status: 400, message: 'Bad request URL.' });
    }
  });

  it('answers 404 outside the renderer folder or for another host', () => {
    expect(rendererTarget(root, 'studio://app/..%2F..%2Fetc%2Fpasswd')).toMatchObject({ status: 404 });
    expect(rendererTarget(root, 'studio://app/a/..%2F..%2F..%2Fmain%2Fmain.cjs')).toMatchObject({ status: 404 });
    expect(rendererTarget(root, 'studio://evil/index.html')).toMatchObject({ status: 404 });
  });
});
