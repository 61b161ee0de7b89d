// Syntax highlighting for code blocks in replies, offline and without HTML strings: lowlight (the
// highlight.js grammars, producing a syntax tree) with a handful of common languages registered,
// turned into React elements here. Unknown or unnamed languages stay plain text.
import type { Element, ElementContent, Root } from 'hast';
import bash from 'highlight.js/lib/languages/bash';
import c from 'highlight.js/lib/languages/c';
import cpp from 'highlight.js/lib/languages/cpp';
import css from 'highlight.js/lib/languages/css';
import diff from 'highlight.js/lib/languages/diff';
import go from 'highlight.js/lib/languages/go';
import java from 'highlight.js/lib/languages/java';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import markdown from 'highlight.js/lib/languages/markdown';
import python from 'highlight.js/lib/languages/python';
import rust from 'highlight.js/lib/languages/rust';
import shell from 'highlight.js/lib/languages/shell';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';
import { createLowlight } from 'lowlight';
import type { ReactNode } from 'react';

const lowlight = createLowlight({ bash, c, cpp, css, diff, go, java, javascript, json, markdown, python, rust, shell, sql, typescript, xml, yaml });

/** Whether a fence's language (or one of its aliases: js, ts, py, sh, html…) is highlighted. */
export function knownLanguage(lang: string | null): boolean {
  return !!lang && lowlight.registered(lang);
}

function toReact(node: ElementContent, key: number): ReactNode {
  if (node.type === 'text') return node.value;
  if (node.type !== 'element') return null;
  const el = node as Element;
  const cls = el.properties?.className;
  const className = Array.isArray(cls) ? cls.join(' ') : typeof cls === 'string' ? cls : undefined;
  // lowlight only makes <span class="hljs-…">; anything else is shown as its text.
  return (
    <span key={key} className={className}>
      {el.children.map(toReact)}
    </span>
  );
}

/** The code as highlighted React nodes (plain text for a language not registered). */
export function highlight(code: string, lang: string | null): ReactNode {
  if (!knownLanguage(lang)) return code;
  let tree: Root;
  try {
    tree = lowlight.highlight(lang!, code);
  } catch {
    return code;
  }
  return tree.children.map((n, i) => toReact(n as ElementContent, i));
}
