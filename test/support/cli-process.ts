import { spawnSync } from 'node:child_process';

/** The repository's root, where `npm run cli` runs. */
export const REPO_ROOT = new URL('../../', import.meta.url).pathname;

/** The CLI as `npm run cli -- ...args` runs it, in a process of its own: its exit code, stdout and stderr. */
export const runCli = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
  });
