import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';

/**
 * Splits this machine's cores between "the database host" and "everything AWS runs elsewhere" for the production-
 * impact measurement: in AWS the archiver's functions run in Lambda and S3 and DynamoDB are services, so the only
 * resource they share with the application is the database. Locally they all share two cores, and the OLTP ratio
 * would measure CPU contention with the local stand-ins rather than the archiver's load on PostgreSQL. PostgreSQL
 * (postmaster and every backend, which inherit its affinity: the archiver's own sessions too) and the OLTP client
 * get the first half of the cores; the bench process (workflow, functions, dynalite) and what it starts afterwards
 * (the local S3 server) the other half. Linux `taskset`; where it is missing or there is one core, nothing is split.
 */
export function splitCpus(databasePids: number[]): { description: string; restore(): void } | undefined {
  const cores = availableParallelism();
  if (cores < 2) return undefined;
  const half = Math.floor(cores / 2);
  const database = half === 1 ? '0' : `0-${half - 1}`;
  const others = half + 1 === cores ? `${half}` : `${half}-${cores - 1}`;
  const pin = (pid: number, cpus: string) =>
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
  const childrenOf = (pid: number): number[] => {
    try {
      return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
        .split('\n')
        .map((line) => Number(line.trim()))
        .filter((child) => child > 0);
    } catch {
      return []; // ps exits 1 when the process has no children
    }
  };
  const tree = (pid: number): number[] => [pid, ...childrenOf(pid).flatMap(tree)];
  const databaseTree = databasePids.flatMap(tree);
  try {
    pin(process.pid, others);
    for (const pid of databaseTree) pin(pid, database);
  } catch {
    return undefined;
  }
  return {
    description: `PostgreSQL and the OLTP client on CPU ${database}; the archiver's process and local S3 on CPU ${others}`,
    restore() {
      const all = `0-${cores - 1}`;
      for (const pid of [process.pid, ...databaseTree]) {
        try {
          pin(pid, all);
        } catch {
          // A backend that ended meanwhile has nothing to restore.
        }
      }
    },
  };
}
