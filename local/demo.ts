import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import type { ArchiverConfigInput } from '../lambdas/shared/config.js';
import { createAuditLogsTable } from './audit-table.js';

export const DEMO_DATABASE = 'shop';
export const DEMO_RETENTION_DAYS = 90;

/**
 * Two audit tables spread over 400 days, so ~78% of rows are older than the 90-day retention:
 * - public.audit_logs: the shared benchmark table (bench/audit_logs.sql): bigint key, timestamptz, jsonb, inet;
 * - "billing"."Invoice Events": composite key, timestamp without time zone, numeric, text[], a name that needs quoting.
 */
export async function seedDemoDatabase(adminUrl: string, rows: number): Promise<string> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DEMO_DATABASE}`);
  await admin.query(`CREATE DATABASE ${DEMO_DATABASE}`);
  await admin.end();
  const url = adminUrl.replace(/\/[^/]*$/, `/${DEMO_DATABASE}`);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const auditRows = Math.round(rows * 0.7);
  const invoiceRows = rows - auditRows;
  await createAuditLogsTable(client, auditRows);
  await client.query(`
    CREATE SCHEMA billing;
    CREATE TABLE billing."Invoice Events" (
      tenant_id int NOT NULL,
      event_id bigint NOT NULL,
      "Occurred At" timestamp without time zone NOT NULL,
      amount numeric(12, 4),
      tags text[],
      note text,
      PRIMARY KEY (tenant_id, event_id));
    CREATE INDEX ON billing."Invoice Events" ("Occurred At");
    INSERT INTO billing."Invoice Events"
    SELECT g % 7, g, (now() AT TIME ZONE 'UTC') - interval '400 days' + (g * (interval '400 days' / ${invoiceRows})),
           (g % 100000) / 100.0, ARRAY['t' || (g % 3), NULL], CASE WHEN g % 10 = 0 THEN E'line1\\nline2 "quoted" \\\\ ✓' END
      FROM generate_series(1, ${invoiceRows}) AS g;
    ANALYZE;`);
  await client.end();
  return url;
}

/** Writes the demo's config: the same schema a production config uses, with a local connection URL. */
export function writeDemoConfig(stateDir: string, databaseUrl: string): string {
  const config: ArchiverConfigInput = {
    s3: { bucket: 'audit-archiver-demo', prefix: 'archive/' },
    defaults: { retentionDays: DEMO_RETENTION_DAYS, batchSize: 25_000, maxBatchesPerRun: 800 },
    databases: [
      {
        name: DEMO_DATABASE,
        credentials: { url: databaseUrl },
        tls: 'disable',
        maxConnections: 2,
        tables: [
          { schema: 'public', name: 'audit_logs', timestampColumn: 'created_at' },
          {
            schema: 'billing',
            name: 'Invoice Events',
            timestampColumn: 'Occurred At',
            timestampTimeZone: 'UTC',
          },
        ],
      },
    ],
  };
  const path = join(stateDir, 'demo-config.yaml');
  writeFileSync(
    path,
    `# Written by \`audit-archiver demo\`; see config/archiver.example.yaml for every option.\n${stringify(config)}`,
  );
  return path;
}
