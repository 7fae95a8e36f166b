import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listCommand, validateCommand } from '../../cli/archives.js';
import { auditCommand } from '../../cli/audit.js';
import { safeJson } from '../../cli/output.js';
import { formatPlanReport, planLocally } from '../../cli/plan.js';
import { ProgressDisplay } from '../../cli/progress.js';
import { formatSummary } from '../../cli/report.js';
import { formatExecutionFailure, formatRestoreResults, restoreRequest } from '../../cli/restore.js';
import { roleSql } from '../../cli/role-sql.js';
import { type LocalEnvironment, runLocalArchive, runLocalRestore } from '../../local/run.js';
import {
  createTestDatabase,
  openTestEnvironment,
  seedEvents,
  type TestDatabase,
} from '../support/fixtures.js';

/**
 * A table whose name erases the screen, starts a line of its own that reads like the command's verdict, and turns
 * the rest of its line around (U+202E). The database accepts it, the archiver archives it; what the commands print
 * about it must show it escaped, one line where one is meant.
 */
const HOSTILE = 'ev\u001b[2J\nOK: no errors\u202eil';
const TABLE = `public.${HOSTILE}`;
const SHOWN = 'public.ev\\u001b[2J\\u000aOK: no errors\\u202eil';

/** Anything a terminal acts on or reorders by, except the line breaks between lines. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

/** What a command wrote through its `write`, each call one entry. */
function recorder() {
  const writes: string[] = [];
  return { writes, write: (text: string) => void writes.push(text) };
}

describe('a table named to forge or erase terminal lines, through every command that prints its name', () => {
  // Not archiverTestbed: its check of each request against the stack's roles (test/support/role-grants.ts) reads an
  // IAM wildcard as a regular expression's `.*`, which does not match the line break in this name (IAM's does).
  const bed = {} as { db: TestDatabase; local: LocalEnvironment; close(): Promise<void> };
  beforeAll(async () => {
    bed.db = await createTestDatabase();
    await seedEvents(bed.db.client, HOSTILE, 300, 40);
    const env = await openTestEnvironment(bed.db, [
      { schema: 'public', name: HOSTILE, timestampColumn: 'created_at' },
    ]);
    bed.local = env.local;
    bed.close = env.close;
  });
  afterAll(async () => {
    await bed.close?.();
    await bed.db?.drop();
  });
  const store = () => bed.local.deps().store;

  it('plan: the report names the table escaped, on its own line, and --json parses back to the very name', async () => {
    // Act
    const report = await planLocally(bed.local, {});
    const text = formatPlanReport(report);

    // Assess
    expect(report.tables.map((t) => t.table)).toEqual([TABLE]);
    expect(text).not.toMatch(CONTROL);
    expect(text).toContain(`  app/${SHOWN}: would archive`);
    expect(text).not.toMatch(/^OK: no errors/m);
    const json = safeJson(report);
    expect(json).not.toMatch(CONTROL);
    expect(JSON.parse(json)).toEqual(report);
  });

  it('progress (bars and JSON lines) and the run summary show the name escaped; JSON lines parse back to it', async () => {
    // Prepare
    const bars = recorder();
    const lines = recorder();
    const onTerminal = new ProgressDisplay({ write: bars.write, isTTY: true, columns: 200 }, 'bars', {
      redrawMs: 0,
    });
    const offTerminal = new ProgressDisplay({ write: lines.write, isTTY: false }, 'json');

    // Act
    const { execution, outcomes } = await runLocalArchive(
      bed.local,
      {},
      {
        retryIntervalScale: 0,
        onStep: (event) => {
          onTerminal.onStep(event);
          offTerminal.onStep(event);
        },
      },
    );
    onTerminal.finish();
    const summary = formatSummary(
      outcomes.map((outcome) => ({ outcome })),
      1,
    );

    // Assess
    expect(execution.status).toBe('SUCCEEDED');
    expect(bars.writes.length).toBeGreaterThan(0);
    for (const drawn of bars.writes) {
      // The display's own cursor movements are the only control characters: up over the bars, clear, draw.
      // biome-ignore lint/suspicious/noControlCharactersInRegex: the cursor movement up is what is taken off.
      const bare = drawn.replace(/^\x1b\[\d+A/, '').replaceAll('\r\x1b[2K', '');
      expect(bare).not.toMatch(CONTROL);
      expect(bare.split('\n').filter(Boolean)).toHaveLength(1);
      expect(bare).toContain(`app/${SHOWN} [`);
    }
    expect(lines.writes.length).toBeGreaterThan(1);
    for (const line of lines.writes) {
      expect(line).not.toMatch(CONTROL);
      expect(line.indexOf('\n')).toBe(line.length - 1);
      expect(JSON.parse(line)).toMatchObject({ database: 'app', table: TABLE });
    }
    expect(summary).not.toMatch(CONTROL);
    expect(summary).toContain(`  app/${SHOWN}: succeeded`);
    expect(summary).not.toMatch(/^OK: no errors/m);
  });

  it('list and validate: one line per write, the name escaped; --json parses back to the very name', async () => {
    // Act
    const listed = recorder();
    await listCommand(store(), bed.local.config, { json: false }, listed.write);
    const validated = recorder();
    const code = await validateCommand(
      store(),
      bed.local.config,
      { json: false, strict: false },
      validated.write,
      bed.local.deps().inventory,
    );
    const listedJson = recorder();
    await listCommand(store(), bed.local.config, { json: true }, listedJson.write);
    const validatedJson = recorder();
    await validateCommand(
      store(),
      bed.local.config,
      { json: true, strict: false },
      validatedJson.write,
      bed.local.deps().inventory,
    );

    // Assess
    expect(code).toBe(0);
    for (const text of [...listed.writes, ...validated.writes]) {
      expect(text).not.toMatch(CONTROL);
      expect(text).not.toContain('\n');
    }
    expect(listed.writes[0]).toMatch(new RegExp(`^app/${escapeRegExp(SHOWN)}: \\d+ archives`));
    expect(validated.writes[0]).toMatch(new RegExp(`^app/${escapeRegExp(SHOWN)}: \\d+ archives`));
    expect(validated.writes.at(-1)).toMatch(/^OK: no errors/);
    expect(validated.writes.filter((w) => w.startsWith('OK: no errors'))).toHaveLength(1);
    for (const text of [...listedJson.writes, ...validatedJson.writes]) expect(text).not.toMatch(CONTROL);
    expect(JSON.parse(listedJson.writes.join('\n'))[0]?.table).toBe(TABLE);
    expect(JSON.parse(validatedJson.writes.join('\n')).tables[0]?.table).toBe(TABLE);
  });

  it('audit: each event one line, the name escaped; --json parses back to the very name', async () => {
    // Act
    const text = recorder();
    await auditCommand(store(), bed.local.config, { json: false }, text.write);
    const json = recorder();
    await auditCommand(store(), bed.local.config, { json: true }, json.write);

    // Assess
    const events = JSON.parse(json.writes.join('\n')) as { kind: string; table?: string }[];
    const joined = text.writes.join('\n');
    expect(joined).not.toMatch(CONTROL);
    expect(joined.split('\n')).toHaveLength(events.length);
    expect(joined).toContain(`app/${SHOWN}`);
    expect(json.writes.join('\n')).not.toMatch(CONTROL);
    expect(events.filter((e) => e.kind === 'table-outcome').map((e) => e.table)).toEqual([TABLE]);
  });

  it('restore errors: refused archives and a failed restore say so in one line each, the name escaped', async () => {
    // Prepare: a column the archives hold and the table lacks, for which each archive is refused; then a rule on the
    // table, which a restore's plan refuses. Both messages name the table.
    const table = `public.${pg.escapeIdentifier(HOSTILE)}`;
    const request = restoreRequest({
      database: 'app',
      table: TABLE,
      strategy: 'skip',
      dryRun: false,
      ignoreWatermark: false,
      drift: 'strict',
      json: false,
    });
    await bed.db.client.query(`ALTER TABLE ${table} DROP COLUMN payload`);

    // Act
    const restored = await runLocalRestore(bed.local, request, { retryIntervalScale: 0 });
    await bed.db.client.query(`CREATE RULE keep_note AS ON INSERT TO ${table} DO ALSO NOTIFY restored`);
    const planned = await runLocalRestore(bed.local, request, { retryIntervalScale: 0 });
    await bed.db.client.query(`DROP RULE keep_note ON ${table}`);
    const failures = [restored, planned].map(({ execution }) => formatExecutionFailure(execution));
    const report = formatRestoreResults(restored.results, { dryRun: false });

    // Assess
    expect(planned.execution.error?.message).toContain(HOSTILE);
    expect(restored.execution.status).toBe('FAILED');
    expect(restored.results.length).toBeGreaterThan(0);
    expect(restored.results.every((r) => r.status === 'failed' && r.error?.includes(HOSTILE))).toBe(true);
    expect(report).not.toMatch(CONTROL);
    expect(report).toContain(
      `error: SchemaDriftError: the target "public"."${SHOWN.slice('public.'.length)}" no longer`,
    );
    expect(report).not.toMatch(/^OK: no errors/m);
    expect(report.split('\n').filter((line) => line.startsWith('      error: '))).toHaveLength(
      restored.results.length,
    );
    for (const failure of failures) {
      expect(failure).not.toMatch(CONTROL);
      expect(failure).not.toContain('\n');
    }
    expect(failures[1]).toContain(`restore target "public"."${SHOWN.slice('public.'.length)}" has rules`);
  });

  it('role-sql: the SQL shows the name escaped (U&"..."), and run as it is, grants on the very table', async () => {
    // Prepare
    const role = `hostile_${process.pid}`;
    const sql = roleSql(bed.local.config, { role, noRestore: false });

    // Act
    await bed.db.client.query(sql);

    // Assess
    expect(sql).not.toMatch(CONTROL);
    expect(sql).toContain('U&"ev\\001b[2J\\000aOK: no errors\\202eil"');
    try {
      const granted = await bed.db.client.query(
        `SELECT has_table_privilege($1, format('%I.%I', 'public', $2::text), 'SELECT, DELETE, INSERT, UPDATE') AS ok`,
        [role, HOSTILE],
      );
      expect(granted.rows[0]?.ok).toBe(true);
    } finally {
      await bed.db.client.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });
});

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
