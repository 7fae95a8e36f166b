import { describe, expect, it } from 'vitest';
import { measureTable } from '../../cli/cost-measure.js';
import { DEFAULT_ARCHIVE_BYTES_PER_ROW } from '../../cli/cost-model.js';
import { runLocalArchive } from '../../local/run.js';
import { archiverTestbed, seedEvents } from '../support/fixtures.js';

describe('audit-archiver cost: live tables from PostgreSQL statistics and measured archives', () => {
  const bed = archiverTestbed(
    async (db) => {
      // 640 rows over the 32 UTC days before today, one every 1.2 hours; with a 30-day retention the cut-off is the
      // midnight 30 days ago: the 39 rows of the two oldest days are eligible (the 40th sits on the cut-off itself).
      await seedEvents(db.client, 'events', 640, 32);
    },
    [{ schema: 'public', name: 'events', timestampColumn: 'created_at' }],
  );

  it('counts rows when there are no statistics, reads the histogram once analyzed, then measures archives', async () => {
    // Act
    const counted = await measureTable(bed.db.client, bed.local.config, 'app', 'public.events', {
      now: bed.db.now().getTime(),
    });
    await bed.db.client.query('ANALYZE public.events');
    const fromStats = await measureTable(bed.db.client, bed.local.config, 'app', 'public.events', {
      now: bed.db.now().getTime(),
    });
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    const store = bed.local.deps().store;
    const measured = await measureTable(bed.db.client, bed.local.config, 'app', 'public.events', {
      store,
      now: bed.db.now().getTime(),
    });

    // Assess
    expect(counted).toMatchObject({ rows: 640, retentionDays: 30 });
    expect(counted.eligibleRows).toBe(39);
    expect(counted.monthlyRows).toBeGreaterThanOrEqual(600);
    expect(counted.eligibleDays).toBe(2);
    expect(fromStats.rows).toBe(640);
    expect(Math.abs(fromStats.eligibleRows - 40)).toBeLessThanOrEqual(10);
    expect(fromStats.bytesPerRowSource).toBe('row width');
    expect(measured.bytesPerRowSource).toBe('measured archives');
    expect(measured.archiveBytesPerRow).toBeGreaterThan(10);
    expect(measured.archiveBytesPerRow).not.toBe(DEFAULT_ARCHIVE_BYTES_PER_ROW);
    expect(counted.archived).toEqual({ bytes: 0, objects: 0 });
    expect([2, 3]).toContain(measured.archived.objects);
    expect(measured.archived.bytes).toBeCloseTo(measured.archiveBytesPerRow * counted.eligibleRows, -1);
  });
});
