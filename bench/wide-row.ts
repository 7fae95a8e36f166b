/**
 * `npm run bench:wide-row -- --mb 8,64`: archives, with the real local workflow, a table holding one row whose text
 * value is N MB (generated in SQL), then restores it into a new table, and prints each step's wall time. PostgreSQL
 * allows up to 1 GB per value; export, verify and restore must stay linear in the row's size.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { stringify } from 'yaml';
import { z } from 'zod';
import type { ArchiverConfigInput } from '../lambdas/shared/config/schema.js';
import { type PostgresVersion, startLocalPostgres } from '../local/postgres.js';
import { openLocalEnvironment, runLocalArchive, runLocalRestore } from '../local/run.js';
import type { StepEvent } from '../local/workflow.js';

export interface WideRowFigures {
  megabytes: number;
  /** Seconds per archive step (sum over its calls), then the whole restore run. */
  seconds: Record<'export' | 'upload' | 'verify' | 'delete' | 'restore', number>;
  /** Whether the restored row equals the original (md5 of the value). */
  restoredExactly: boolean;
  /** Step calls that failed (and were retried by the workflow), by function and error name. */
  failedCalls: string[];
}

/** The value: 32-character md5 blocks with a quote and a newline, so the JSON line escapes them on the way. */
const valueSql = (megabytes: number) =>
  `repeat(md5(random()::text) || E'"\\n', ${Math.ceil((megabytes * 1024 * 1024) / 34)})`;

async function runWideRow(megabytes: number, version: PostgresVersion): Promise<WideRowFigures> {
  const work = mkdtempSync(join(tmpdir(), 'audit-archiver-wide-row-'));
  const server = await startLocalPostgres(version);
  const client = new pg.Client({ connectionString: server.url() });
  try {
    await client.connect();
    await client.query(
      'CREATE TABLE wide (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, payload text NOT NULL)',
    );
    await client.query(
      `INSERT INTO wide VALUES (1, date_trunc('day', now(), 'UTC') - interval '40 days', ${valueSql(megabytes)})`,
    );
    const original = (await client.query('SELECT md5(payload) AS m FROM wide')).rows[0]?.m;
    const config: ArchiverConfigInput = {
      s3: { bucket: 'audit-archiver-wide-row' },
      defaults: { retentionDays: 30 },
      databases: [
        {
          name: 'bench',
          credentials: { url: server.url() },
          tls: 'disable',
          restoreTargets: ['public.restored'],
          tables: [{ name: 'wide', timestampColumn: 'created_at' }],
        },
      ],
    };
    const configPath = join(work, 'config.yaml');
    writeFileSync(configPath, stringify(config));
    const local = await openLocalEnvironment(configPath, join(work, 'state'));
    try {
      const steps: StepEvent[] = [];
      const archive = await runLocalArchive(local, {}, { onStep: (event) => steps.push(event) });
      if (archive.execution.status !== 'SUCCEEDED' || archive.outcomes[0]?.rowsArchived !== 1)
        throw new Error(`archive run failed: ${JSON.stringify(archive.execution.error)}`);
      const started = performance.now();
      const restore = await runLocalRestore(
        local,
        { database: 'bench', table: 'public.wide', targetTable: 'public.restored' },
        { onStep: (event) => steps.push(event) },
      );
      const restoreSeconds = (performance.now() - started) / 1000;
      if (restore.execution.status !== 'SUCCEEDED')
        throw new Error(`restore run failed: ${JSON.stringify(restore.execution.error)}`);
      const restored = (await client.query('SELECT md5(payload) AS m FROM restored')).rows[0]?.m;
      const step = (name: StepEvent['functionName']) =>
        steps.filter((s) => s.functionName === name).reduce((sum, s) => sum + s.durationMs, 0) / 1000;
      return {
        megabytes,
        seconds: {
          export: step('export'),
          upload: step('upload'),
          verify: step('verify'),
          delete: step('delete'),
          restore: restoreSeconds,
        },
        restoredExactly: restored === original,
        failedCalls: steps.filter((s) => s.error).map((s) => `${s.functionName}: ${s.error?.name}`),
      };
    } finally {
      await local.close();
    }
  } finally {
    await client.end().catch(() => undefined);
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

const OptionsSchema = z.object({
  mb: z
    .string()
    .transform((text) => text.split(',').map(Number))
    .pipe(z.array(z.number().int().min(1).max(900)).min(1)),
  postgres: z.coerce.number().pipe(z.union([z.literal(14), z.literal(18)])),
});

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { mb: { type: 'string', default: '8,64' }, postgres: { type: 'string', default: '18' } },
  });
  const options = OptionsSchema.parse(values);
  for (const megabytes of options.mb) {
    const result = await runWideRow(megabytes, options.postgres as PostgresVersion);
    const times = Object.entries(result.seconds)
      .map(([stage, seconds]) => `${stage} ${seconds.toFixed(2)} s`)
      .join(', ');
    const failed = result.failedCalls.length > 0 ? result.failedCalls.join(', ') : 'none';
    console.log(
      `one row of ${megabytes} MB: ${times}; restored exactly: ${result.restoredExactly}; failed calls: ${failed}`,
    );
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error: Error) => {
    console.error(`${error.name}: ${error.message}`);
    process.exitCode = 1;
  });
}
