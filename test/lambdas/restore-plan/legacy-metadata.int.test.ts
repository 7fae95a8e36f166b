import { beforeAll, describe, expect, it } from 'vitest';
import { listPage, planRestore } from '../../../lambdas/restore-plan/core.js';
import type { ArchiveStore } from '../../../lambdas/shared/archive/store.js';
import { RestoreRequestSchema } from '../../../lambdas/shared/restore/restore-task.js';
import { archiverTestbed, putLegacyAuditLogs } from '../../support/fixtures.js';

/**
 * The Python tool's archives of `public.audit_log`, and one of `billing.audit_log`, a table since dropped, in the one
 * folder its layout gives both. The plan reads their metadata only when the database has a same-named table in another
 * schema; the list steps always do, and leave the other schema's out.
 */
describe('restore plan of legacy archives, reading their metadata only where another schema may share the folder', () => {
  const bed = archiverTestbed(
    async (db) => {
      await db.client.query(
        'CREATE TABLE public.audit_log (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, actor text NOT NULL)',
      );
    },
    [{ schema: 'public', name: 'audit_log', timestampColumn: 'created_at' }],
  );
  const runs = [
    ['public', '20250301T020304Z'],
    ['billing', '20250302T020304Z'],
    ['public', '20250303T020304Z'],
    ['public', '20250304T020304Z'],
  ] as const;

  beforeAll(() => putLegacyAuditLogs(bed.local, bed.db.name, runs, [1]));

  /** The testbed's deps, their store noting each metadata object read. */
  const counted = () => {
    const deps = bed.local.deps();
    const read: string[] = [];
    const getText = deps.store.getText.bind(deps.store);
    const store = Object.assign(Object.create(deps.store) as ArchiveStore, {
      getText: async (key: string) => {
        if (key.endsWith('.metadata.json')) read.push(key);
        return getText(key);
      },
    });
    return { deps: { ...deps, store }, read };
  };
  const request = () =>
    RestoreRequestSchema.parse({
      database: 'app',
      table: 'public.audit_log',
      legacy: { database: bed.db.name },
      dryRun: true,
    });

  it('reads no metadata in the plan when no other schema has the table; the list step still leaves its archives out', async () => {
    // Prepare
    const { deps, read } = counted();

    // Act
    const plan = await planRestore('r-no-twin', request(), deps);
    const planReads = read.length;
    const page = await listPage(plan.task, '', 4, deps);

    // Assess: the plan counts the dropped twin's archive; the page leaves it out (newest run first, as skip takes them).
    expect(planReads).toBe(0);
    expect(plan.archives).toBe(4);
    const keys = page.groups.flatMap((group) => group.archives.map((a) => a.key));
    expect(keys).toEqual([
      expect.stringMatching(/_20250304T020304Z_batch_001\.jsonl\.gz$/),
      expect.stringMatching(/_20250303T020304Z_batch_001\.jsonl\.gz$/),
      expect.stringMatching(/_20250301T020304Z_batch_001\.jsonl\.gz$/),
    ]);
  });

  it('reads every archive’s metadata in the plan when another schema has a table of that name, leaving its archives out', async () => {
    // Prepare
    await bed.db.client.query('CREATE SCHEMA billing');
    await bed.db.client.query('CREATE TABLE billing.audit_log (id bigint PRIMARY KEY)');
    const { deps, read } = counted();

    // Act
    const plan = await planRestore('r-twin', request(), deps);

    // Assess
    expect(read).toHaveLength(4);
    expect(plan.archives).toBe(3);
  });
});
