import { describe, expect, it } from 'vitest';
import { assertTransactionEnded } from '../../../../lambdas/shared/batch/batch.js';
import { DeleteInProgressError } from '../../../../lambdas/shared/errors/step-errors.js';
import { ownServer } from '../../../support/own-server.js';

/**
 * A commit waiting for a synchronous standby is in the commit log already, and its deleted rows are still visible:
 * settling a delete must not read the rows as the answer then. Waiting for a standby needs `synchronous_standby_names`,
 * which holds for the whole server, so this file has a server of its own.
 */
describe('assertTransactionEnded, against a commit that waits for a synchronous standby', () => {
  const { connect } = ownServer();

  it('says the delete is in progress until its COMMIT returned, then lets the rows answer', async () => {
    // Prepare: a delete whose COMMIT waits for a standby that never answers.
    const admin = await connect();
    await admin.query(
      'CREATE TABLE public.rows (id int); INSERT INTO public.rows SELECT generate_series(1, 10)',
    );
    await admin.query(`ALTER SYSTEM SET synchronous_standby_names = 'absent_standby'`);
    await admin.query('SELECT pg_reload_conf()');
    const deleting = await connect();
    await expect
      .poll(
        async () =>
          (await deleting.query('SHOW synchronous_standby_names')).rows[0].synchronous_standby_names,
      )
      .toBe('absent_standby');
    await deleting.query('BEGIN');
    await deleting.query('DELETE FROM public.rows');
    const xid =
      (await deleting.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid')).rows[0]?.xid ?? '';
    const committed = deleting.query('COMMIT');
    const settling = await connect();
    const waiting = async () =>
      (
        await settling.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
        )
      ).rows[0]?.n;
    await expect.poll(waiting).toBe(1);

    // Act
    const whileWaiting = await assertTransactionEnded(settling, xid).catch((error: unknown) => error);
    const visibleWhileWaiting = (await settling.query('SELECT count(*)::int AS n FROM public.rows')).rows[0]
      .n;
    await admin.query(`ALTER SYSTEM SET synchronous_standby_names = ''`);
    await admin.query('SELECT pg_reload_conf()');
    await committed;
    const afterCommit = await assertTransactionEnded(settling, xid).catch((error: unknown) => error);

    // Assess: while it waits, its rows are still there to see, and the delete counts as under way; once it returned,
    // the rows are gone for the next snapshot.
    expect(visibleWhileWaiting).toBe(10);
    expect(whileWaiting).toBeInstanceOf(DeleteInProgressError);
    expect(afterCommit).toBeUndefined();
    expect((await settling.query('SELECT count(*)::int AS n FROM public.rows')).rows[0].n).toBe(0);
  });
});
