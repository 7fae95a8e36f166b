import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = new URL('../../', import.meta.url).pathname;
const DOCS = ['README.md', 'ARCHITECTURE.md', 'docs/operating.md', 'docs/reference.md', 'docs/runbook.md'];

/** GitHub's heading anchor: lower case, punctuation but "-" and "_" dropped, spaces as "-". */
const anchorOf = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}_\- ]/gu, '')
    .replaceAll(' ', '-');

/** Lines outside fenced code blocks, with their numbers. */
function prose(text: string): [number, string][] {
  let fenced = false;
  return text.split('\n').flatMap((line, i): [number, string][] => {
    if (line.startsWith('```')) fenced = !fenced;
    return fenced ? [] : [[i + 1, line]];
  });
}

const anchorsOf = (path: string) =>
  new Set(
    prose(readFileSync(path, 'utf8')).flatMap(([, line]) => {
      const heading = /^#{1,6} (.*)$/.exec(line)?.[1];
      return heading ? [anchorOf(heading)] : [];
    }),
  );

describe('the documentation', () => {
  it('links only to files that exist, and to headings they have', () => {
    // Act
    const broken = DOCS.flatMap((doc) =>
      prose(readFileSync(join(root, doc), 'utf8')).flatMap(([n, line]) =>
        [...line.matchAll(/\[[^\]]*\]\(([^)\s]+)\)/g)].flatMap(([, target = '']) => {
          if (/^[a-z]+:/.test(target)) return [];
          const [path = '', fragment] = target.split('#');
          const file = path ? normalize(join(dirname(join(root, doc)), path)) : join(root, doc);
          if (!existsSync(file)) return [`${doc}:${n} ${target}: no such file`];
          if (fragment && file.endsWith('.md') && !anchorsOf(file).has(fragment))
            return [`${doc}:${n} ${target}: no such heading`];
          return [];
        }),
      ),
    );
    // Assess
    expect(broken).toEqual([]);
  });
});
