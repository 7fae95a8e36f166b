import { describe, expect, it } from 'vitest';
import { DEFAULT_ARCHIVE_BYTES_PER_ROW, measureTable } from '../../cli/cost.js';
import { runLocalArchive } from '../../local/run.js';
import { archiverTestbed, seedEvents } from '../support/fixtures.js';

describe('audit-archiver cost: live tables from PostgreSQL statistics and measured archives', () => {
  const bed = archiverTestbed(
    async (db) => {
      // 640 rows over 32 days; the config's retention is 30 days: 40 are eligible (two days: two or three UTC days, one archive each).
      await seedEvents(db.client, 'events', 640, 32);
    },
    [{ schema: 'public', name: 'events', timestampColumn: 'created_at' }],
  );

  it('counts rows when there are no statistics, reads the histogram once analyzed, then measures archives', async () => {
    // Act
    const counted = await measureTable(bed.db.client, bed.local.config, 'app', 'public.events');
    await bed.db.client.query('ANALYZE public.events');
    const fromStats = await measureTable(bed.db.client, bed.local.config, 'app', 'public.events');
    expect((await runLocalArchive(bed.local, {}, { retryIntervalScale: 0 })).execution.status).toBe(
      'SUCCEEDED',
    );
    const store = bed.local.deps().store;
    const measured = await measureTable(bed.db.client, bed.local.config, 'app', 'public.events', store);

    // Assess
    expect(counted).toMatchObject({ rows: 640, retentionDays: 30 });
    expect(counted.eligibleRows).toBeGreaterThanOrEqual(39);
    expect(counted.eligibleRows).toBeLessThanOrEqual(40);
    expect(counted.monthlyRows).toBeGreaterThanOrEqual(600);
    expect(counted.eligibleDays).toBe(3);
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
