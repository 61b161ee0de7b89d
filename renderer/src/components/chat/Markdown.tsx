// A reply rendered as Markdown (GitHub flavour: tables, lists, strikethrough, task lists) with
// react-markdown. Model output is text, never markup: raw HTML in it is shown as text (no rehype-raw),
// links open outside the studio and images are not fetched (shown as their alt text and address).
// Fenced code gets syntax highlighting and a copy button.
import type { Element, ElementContent } from 'hast';
import { memo, type ReactNode } from 'react';
import ReactMarkdown, { type Components } from 'react-markdown';
import remarkGfm from 'remark-gfm';
import { CopyButton } from './CopyButton';
import { highlight } from './highlight';

function textOf(node: ElementContent): string {
  if (node.type === 'text') return node.value;
  if (node.type === 'element') return node.children.map(textOf).join('');
  return '';
}

function CodeBlock({ pre }: { pre: Element | undefined }) {
  const code = pre?.children.find((c): c is Element => c.type === 'element' && c.tagName === 'code');
  const classes = code?.properties?.className;
  const langClass = Array.isArray(classes) ? classes.map(String).find((c) => c.startsWith('language-')) : undefined;
  const lang = langClass ? langClass.slice('language-'.length) : null;
  // The fence's last newline is not part of the code.
  const text = (code ? textOf(code) : pre ? textOf(pre) : '').replace(/\n$/, '');
  return (
    <div className="code-block" data-testid="code-block">
      <div className="code-block-head">
        <span className="code-block-lang mono">{lang ?? 'text'}</span>
        <CopyButton text={text} label="Copy code" ariaLabel="Copy code" testId="copy-code" />
      </div>
      <pre className="code-block-body">
        <code className={`hljs mono${lang ? ` language-${lang}` : ''}`}>{highlight(text, lang)}</code>
      </pre>
    </div>
  );
}

const components: Components = {
  pre: ({ node }) => <CodeBlock pre={node} />,
  a: ({ href, children }) => (
    <a href={href} target="_blank" rel="noopener noreferrer nofollow">
      {children}
    </a>
  ),
  // No request leaves the studio because a model wrote an image.
  img: ({ src, alt }) => (
    <span className="md-image" title={typeof src === 'string' ? src : undefined}>
      [image{alt ? `: ${alt}` : ''}]
    </span>
  ),
};

const plugins = [remarkGfm];

export const Markdown = memo(function Markdown({ text }: { text: string }): ReactNode {
  return (
    <div className="markdown">
      <ReactMarkdown remarkPlugins={plugins} components={components}>
        {text}
      </ReactMarkdown>
    </div>
  );
});
