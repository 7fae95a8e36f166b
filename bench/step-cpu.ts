/**
 * `npm run bench:steps -- --rows 50000 --days 20 --runs 3`: CPU per row of each step, one batch at a time, without
 * the whole bench. Per round it creates the shared table (bench/audit_logs.sql) afresh with twice `rows` eligible
 * rows, `rows` on each of two runs of `days` UTC days before the cut-off, and starts each function in a process of
 * its own (as the bench runs them, bench/run.ts). A first archive run (one batch: the older days) and a restore of
 * those days warm the processes up, as the bench's 18 batches keep them warm; then the second archive run and the
 * restore of its days are measured: the CPU seconds of each process group (bench/cpu-time.ts) over each. Prints each
 * group's CPU ms per 10k rows per round and their medians. The functions' figures are their own processes', so other
 * work on the machine moves them little; it shows as "other processes". Two row counts over the same days tell the
 * cost per row from the cost per batch and object. `--cpu-prof DIR` writes a V8 CPU profile of each function's
 * process into DIR when it exits.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { stringify } from 'yaml';
import { z } from 'zod';
import { retentionCutoff } from '../lambdas/shared/config/governance.js';
import type { ArchiverConfigInput } from '../lambdas/shared/config/schema.js';
import { createAuditLogsTable } from '../local/audit-table.js';
import { FunctionProcesses } from '../local/function-processes.js';
import { type PostgresVersion, startLocalPostgres } from '../local/postgres.js';
import { openLocalEnvironment, runLocalArchive, runLocalRestore } from '../local/run.js';
import { FUNCTION_NAMES } from '../local/workflow.js';
import { type CpuFigures, cpuTimeOf } from './cpu-time.js';
import { median } from './median.js';
import { RETENTION_DAYS } from './run.js';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '50000' },
    days: { type: 'string', default: '20' },
    runs: { type: 'string', default: '3' },
    postgres: { type: 'string', default: '18' },
    'cpu-prof': { type: 'string' },
  },
});
const options = z
  .object({
    rows: z.coerce.number().int().positive(),
    days: z.coerce.number().int().min(1).max(30),
    runs: z.coerce.number().int().min(1),
    postgres: z.enum(['14', '18']).transform((major) => Number(major) as PostgresVersion),
  })
  .parse(values);
const profileDir = values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined;

/** CPU ms per 10k rows by group of one measured span. */
const per10k = (cpu: CpuFigures, rows: number) =>
  new Map(cpu.groups.map((g) => [g.group, (g.seconds * 1000 * 10_000) / rows]));

const server = await startLocalPostgres(options.postgres);
const rounds: { archive: Map<string, number>; restore: Map<string, number> }[] = [];
try {
  const client = new pg.Client({ connectionString: server.url() });
  await client.connect();
  for (let round = 0; round < options.runs; round++) {
    const work = mkdtempSync(join(tmpdir(), 'audit-archiver-step-cpu-'));
    await client.query('DROP TABLE IF EXISTS audit_logs, restored, warmed');
    const eligible = 2 * options.rows;
    // A tenth more rows than eligible, so the table has recent rows too.
    await createAuditLogsTable(client, Math.round(eligible * 1.1));
    const cutoff = retentionCutoff(Date.now(), RETENTION_DAYS);
    const span = 2 * options.days;
    await client.query(
      `WITH eligible AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM audit_logs ORDER BY id LIMIT $2)
       UPDATE audit_logs a SET created_at = $1::timestamptz - make_interval(days => $3)
                                            + (e.n * make_interval(days => $3) / $2)
         FROM eligible e WHERE a.id = e.id`,
      [cutoff, eligible, span],
    );
    await client.query(`UPDATE audit_logs SET created_at = now() WHERE created_at < $1 AND id > $2`, [
      cutoff,
      eligible,
    ]);
    const day = (daysBefore: number) =>
      new Date(Date.parse(cutoff) - daysBefore * 86_400_000).toISOString().slice(0, 10);
    await client.query('VACUUM FULL ANALYZE audit_logs');
    const configPath = join(work, 'config.yaml');
    const config: ArchiverConfigInput = {
      s3: { bucket: 'audit-archiver-step-cpu' },
      defaults: {
        retentionDays: RETENTION_DAYS,
        batchSize: options.rows,
        compressionLevel: 3,
        maxBatchesPerRun: 1,
      },
      databases: [
        {
          name: 'bench',
          credentials: { url: server.url() },
          tls: 'disable',
          restoreTargets: ['public.restored', 'public.warmed'],
          tables: [{ name: 'audit_logs', timestampColumn: 'created_at' }],
        },
      ],
    };
    writeFileSync(configPath, stringify(config));
    const local = await openLocalEnvironment(configPath, join(work, 'state'));
    const functions = new FunctionProcesses(
      local.env,
      profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
    );
    try {
      await functions.start(FUNCTION_NAMES);
      const restoreDays = (target: string, fromDay: string, toDay: string) =>
        runLocalRestore(
          local,
          {
            database: 'bench',
            table: 'public.audit_logs',
            targetTable: target,
            mode: 'range',
            fromDay,
            toDay,
          },
          { functions },
        );
      const warm = await runLocalArchive(local, {}, { functions });
      if (warm.outcomes[0]?.rowsArchived !== options.rows)
        throw new Error(`warm-up run: ${JSON.stringify(warm.execution.error ?? warm.outcomes[0])}`);
      await restoreDays('public.warmed', day(span), day(options.days + 1));
      const archive = await cpuTimeOf(
        () => runLocalArchive(local, {}, { functions }),
        availableParallelism(),
      );
      const outcome = archive.value.outcomes[0];
      if (archive.value.execution.status !== 'SUCCEEDED' || outcome?.rowsArchived !== options.rows) {
        throw new Error(`archive run: ${JSON.stringify(archive.value.execution.error ?? outcome)}`);
      }
      const restore = await cpuTimeOf(
        () => restoreDays('public.restored', day(options.days), day(1)),
        availableParallelism(),
      );
      const restored = restore.value.results.reduce((sum, r) => sum + r.inserted, 0);
      if (restore.value.execution.status !== 'SUCCEEDED' || restored !== options.rows) {
        throw new Error(`restore run: ${JSON.stringify(restore.value.execution.error)}`);
      }
      rounds.push({ archive: per10k(archive.cpu, options.rows), restore: per10k(restore.cpu, options.rows) });
      console.log(
        `round ${round + 1}: ${restore.value.results.length} objects, archive ${archive.cpu.wallSeconds.toFixed(1)} s, restore ${restore.cpu.wallSeconds.toFixed(1)} s`,
      );
    } finally {
      await functions.close();
      await local.close();
      rmSync(work, { recursive: true, force: true });
    }
  }
  await client.end();
} finally {
  await server.stop();
}

for (const run of ['archive', 'restore'] as const) {
  console.log(`\n${run} run, CPU ms per 10k rows (median [each round])`);
  const groups = [...new Set(rounds.flatMap((r) => [...r[run].keys()]))];
  for (const group of groups) {
    const each = rounds.map((r) => r[run].get(group) ?? 0);
    console.log(
      `  ${group.padEnd(60)} ${median(each).toFixed(0).padStart(6)}  [${each.map((x) => x.toFixed(0)).join(', ')}]`,
    );
  }
}
