/**
 * The OLTP-like workload of `npm run bench`, run in its own process (forked by bench/run.ts) so that it competes
 * with the archiver for PostgreSQL and the CPU as an application would, not for one Node event loop. Each client
 * runs transactions back to back: a new audit row (never eligible: it is timestamped now), an UPDATE and a SELECT
 * by primary key on `accounts`. Transactions run only inside a window the parent opens and closes over IPC.
 */
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { z } from 'zod';

/** Rows of the `accounts` table the workload reads and writes. */
export const ACCOUNTS = 10_000;

export const CommandSchema = z.discriminatedUnion('command', [
  z.object({ command: z.literal('start') }),
  z.object({ command: z.literal('stop') }),
  z.object({ command: z.literal('exit') }),
]);
export type Command = z.infer<typeof CommandSchema>;

export const WindowFiguresSchema = z.object({
  transactions: z.number().int().min(0),
  seconds: z.number().positive(),
  tps: z.number().min(0),
  p95Ms: z.number().min(0),
  p99Ms: z.number().min(0),
  /** Transactions that failed (counted out of the TPS). */
  errors: z.number().int().min(0),
});
export type WindowFigures = z.infer<typeof WindowFiguresSchema>;

/** Statements that create `accounts` for the workload (the parent runs them before the first window). */
export const ACCOUNTS_SQL = [
  'CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, updated_at timestamptz NOT NULL)',
  `INSERT INTO accounts SELECT g, 1000, now() FROM generate_series(1, ${ACCOUNTS}) AS g`,
  'VACUUM ANALYZE accounts',
];

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

const randomAccount = () => 1 + Math.floor(Math.random() * ACCOUNTS);

async function transaction(client: pg.Client): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(
      `INSERT INTO audit_logs (created_at, actor, action, entity_type, entity_id, payload)
       VALUES (now(), $1, 'update', 'account', $2, $3)`,
      [`user_${randomAccount() % 5000}`, randomAccount(), { amount: 5 }],
    );
    await client.query('UPDATE accounts SET balance = balance + 5, updated_at = now() WHERE id = $1', [
      randomAccount(),
    ]);
    await client.query('SELECT balance FROM accounts WHERE id = $1', [randomAccount()]);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

async function main(url: string, clientCount: number): Promise<void> {
  const clients = await Promise.all(
    Array.from({ length: clientCount }, async () => {
      const client = new pg.Client({ connectionString: url, application_name: 'bench-oltp' });
      await client.connect();
      return client;
    }),
  );
  let running = false;
  let loops: Promise<void>[] = [];
  let latencies: number[] = [];
  let errors = 0;
  let openedAt = 0;
  const loop = async (client: pg.Client) => {
    while (running) {
      const started = performance.now();
      try {
        await transaction(client);
        latencies.push(performance.now() - started);
      } catch {
        errors += 1;
      }
    }
  };
  const send = (message: unknown) =>
    new Promise<void>((resolve, reject) =>
      process.send?.(message, (error: Error | null) => (error ? reject(error) : resolve())),
    );
  process.on('message', async (message) => {
    const { command } = CommandSchema.parse(message);
    if (command === 'start') {
      running = true;
      latencies = [];
      errors = 0;
      openedAt = performance.now();
      loops = clients.map(loop);
      await send({ started: true });
    } else if (command === 'stop') {
      running = false;
      await Promise.all(loops);
      const seconds = (performance.now() - openedAt) / 1000;
      const sorted = latencies.sort((a, b) => a - b);
      const figures: WindowFigures = {
        transactions: sorted.length,
        seconds,
        tps: sorted.length / seconds,
        p95Ms: percentile(sorted, 95),
        p99Ms: percentile(sorted, 99),
        errors,
      };
      await send(figures);
    } else {
      await Promise.all(clients.map((client) => client.end()));
      process.disconnect();
    }
  });
  await send({ ready: true });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [url, clients] = process.argv.slice(2);
  if (!url || !clients) throw new Error('usage: oltp-load.ts <postgres url> <clients>');
  main(url, Number(clients)).catch((error: Error) => {
    console.error(`oltp-load: ${error.name}: ${error.message}`);
    process.exit(1);
  });
}
