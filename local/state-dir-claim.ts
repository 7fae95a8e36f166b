import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../lambdas/shared/errors/step-errors.js';

const CLAIM_FILE = 'owner.pid';

/** Whether a process with this id is alive (signal 0 only checks; EPERM means alive but not ours). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Claims a state dir for this process: one process at a time serves its local S3 and DynamoDB (a second one's local
 * DynamoDB cannot open the database files and fails on its first request). A claim left by a process that died (a
 * killed run) is taken over. So while a command holds the claim, no other local process runs in this state dir, and
 * a lease a local run left in its lock table belongs to a run that is over: what makes `lease break` safe locally.
 * Returns the release.
 */
export function claimStateDir(stateDir: string): () => void {
  const file = join(stateDir, CLAIM_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw error;
      const holder = Number(readFileSync(file, 'utf8').trim());
      if (Number.isInteger(holder) && holder > 0 && alive(holder)) {
        throw new ConfigError(
          `the state dir ${stateDir} is in use by another audit-archiver process (pid ${holder}): wait for it to end, or give another --state-dir`,
        );
      }
      unlinkSync(file);
    }
  }
  return () => {
    try {
      if (readFileSync(file, 'utf8').trim() === String(process.pid)) unlinkSync(file);
    } catch {
      // Already gone: nothing to release.
    }
  };
}
