import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';

/**
 * Where a stage's CPU time went, by process group: PostgreSQL, each function's processes, the local S3 server, the
 * bench process (the Step Functions interpreter and the local DynamoDB) and the rest of the machine. On this 2-core
 * machine the stand-ins share the cores with the database and the functions; in AWS S3 and DynamoDB are services and
 * each function has its own CPU, so this says how much of a stage's wall time is the stand-ins' work. Linux /proc;
 * elsewhere the figures are empty.
 */
export interface CpuFigures {
  /** Wall seconds of the measured span, and the machine's cores: wall × cores is the CPU time there was. */
  wallSeconds: number;
  cores: number;
  /** CPU seconds (user + system) by group, largest first. */
  groups: { group: string; seconds: number }[];
}

/** The group of every process that is not the archiver's, its stand-ins' or the database's. */
export const OTHER_PROCESSES = 'other processes';

interface ProcessTicks {
  group: string;
  parent: number;
  /** Its own ticks plus those of the children it has reaped (a PostgreSQL backend or parallel worker that ended). */
  ticks: number;
}

const ticksPerSecond = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

function groupOf(pid: number, stat: string): string {
  if (pid === process.pid) return 'bench process (Step Functions interpreter, local DynamoDB)';
  const command = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
  if (command === 'postgres') return 'PostgreSQL';
  let args: string[] = [];
  try {
    args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return OTHER_PROCESSES;
  }
  if (args.some((arg) => arg.endsWith('s3-server.mjs'))) return 'local S3 server';
  const bundle = args.find((arg) => arg.endsWith('.mjs'));
  if (command === 'node' && bundle) return `function ${basename(bundle, '.mjs')}`;
  return OTHER_PROCESSES;
}

/** Every process's CPU ticks now, by pid. */
function snapshot(): Map<number, ProcessTicks> {
  const processes = new Map<number, ProcessTicks>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return processes;
  }
  for (const entry of entries) {
    const pid = Number(entry);
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the command: state, ppid, ..., utime (12th), stime, cutime, cstime.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0);
      processes.set(pid, { group: groupOf(pid, stat), parent: Number(fields[1]), ticks });
    } catch {
      // The process ended while the list was read.
    }
  }
  return processes;
}

/** Runs `work` and measures the CPU time each process group spent meanwhile. */
export async function cpuTimeOf<T>(
  work: () => Promise<T>,
  cores: number,
): Promise<{ value: T; cpu: CpuFigures }> {
  const before = snapshot();
  const started = performance.now();
  const value = await work();
  const wallSeconds = (performance.now() - started) / 1000;
  const after = snapshot();
  const ticks = new Map<string, number>();
  const add = (group: string, spent: number) => ticks.set(group, (ticks.get(group) ?? 0) + spent);
  for (const [pid, now] of after) add(now.group, now.ticks - (before.get(pid)?.ticks ?? 0));
  // A process that ended meanwhile moved all its ticks into its parent's (once reaped): only those after the start
  // were spent in the span.
  for (const [pid, then] of before) {
    if (after.has(pid)) continue;
    const parent = after.get(then.parent) ?? before.get(then.parent);
    if (parent) add(parent.group, -then.ticks);
  }
  const groups = [...ticks]
    .filter(([, spent]) => spent > 0)
    .map(([group, spent]) => ({ group, seconds: spent / ticksPerSecond }))
    .sort((a, b) => b.seconds - a.seconds);
  return { value, cpu: { wallSeconds, cores, groups } };
}
