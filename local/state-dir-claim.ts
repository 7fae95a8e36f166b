import { readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';

const CLAIM_FILE = 'owner.pid';
/** Held only while a dead process's claim is replaced, so two processes never both take it over. */
const TAKEOVER_FILE = 'owner.pid.takeover';
/** A takeover file older than this was left by a process that died while taking over: it is removed. */
const STALE_TAKEOVER_MS = 10_000;

/** Whether a process with this id is alive (signal 0 only checks; EPERM means alive but not ours). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const code = (error: unknown) => (error as NodeJS.ErrnoException).code;

/** The pid a claim file names, or undefined when there is none (gone, or half written). */
function holderOf(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch (error) {
    if (code(error) === 'ENOENT') return undefined;
    throw error;
  }
}

/** A short synchronous wait between attempts (the claim is taken before anything else starts). */
const pause = () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);

function unlinkIfThere(file: string): void {
  try {
    unlinkSync(file);
  } catch (error) {
    if (code(error) !== 'ENOENT') throw error;
  }
}

const inUse = (stateDir: string, pid: number) =>
  new ConfigError(
    `the state dir ${stateDir} is in use by another audit-archiver process (pid ${pid}): wait for it to end, or give another --state-dir`,
  );

/**
 * Claims a state dir for this process: one process at a time serves its local S3 and DynamoDB (a second one's local
 * DynamoDB cannot open the database files and fails on its first request). A claim left by a process that died (a
 * killed run) is taken over, under a takeover file created exclusively, so two processes never both take it. So
 * while a command holds the claim, no other local process runs in this state dir, and a lease a local run left in its
 * lock table belongs to a run that is over: what makes `lease break` safe locally. Returns the release.
 */
export function claimStateDir(stateDir: string): () => void {
  const file = join(stateDir, CLAIM_FILE);
  const takeover = join(stateDir, TAKEOVER_FILE);
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => {
        if (holderOf(file) === process.pid) unlinkSync(file);
      };
    } catch (error) {
      if (code(error) !== 'EEXIST') throw error;
    }
    const holder = holderOf(file);
    if (holder !== undefined && alive(holder)) throw inUse(stateDir, holder);
    try {
      writeFileSync(takeover, String(process.pid), { flag: 'wx' });
    } catch (error) {
      if (code(error) !== 'EEXIST') throw error;
      // Another process is taking over: wait for it, unless it died doing so.
      const since = statSync(takeover, { throwIfNoEntry: false })?.mtimeMs;
      if (since !== undefined && Date.now() - since > STALE_TAKEOVER_MS) unlinkIfThere(takeover);
      else pause();
      continue;
    }
    try {
      // Under the takeover file: the claim is still the dead one's, so it may go. One without a pid yet may be a
      // live process's claim being written: it goes only once it is old.
      const now = holderOf(file);
      const age = Date.now() - (statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0);
      if (now === undefined ? age > STALE_TAKEOVER_MS : !alive(now)) unlinkIfThere(file);
    } finally {
      unlinkIfThere(takeover);
    }
    pause();
  }
  throw new ConfigError(
    `the state dir ${stateDir} could not be claimed; remove ${file} if no audit-archiver runs`,
  );
}
