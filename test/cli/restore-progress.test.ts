import { describe, expect, it } from 'vitest';
import { formatEta, formatRestoreProgress, RestoreProgress } from '../../cli/restore-progress.js';

const plan = { archives: 4, task: { database: 'app', target: { schema: 'public', name: 'restored' } } };
const restored = (rows: number) => ({ status: 'restored', rows });

describe('RestoreProgress', () => {
  it('gives archives and rows done, the rate since the start, and the time left at that pace', () => {
    // Prepare
    let now = 1_000_000;
    const progress = new RestoreProgress(() => now);

    // Act
    progress.planned(plan);
    now += 10_000;
    progress.finished([restored(1000), restored(500)]);
    const midway = progress.snapshot();
    now += 10_000;
    progress.finished([
      { status: 'already-restored', rows: 700 },
      { status: 'failed', rows: 0 },
    ]);
    progress.ended('failed');
    const end = progress.snapshot();

    // Assess: rows restored count, rows already there and failures do not; no time left once ended.
    expect(midway).toEqual({
      database: 'app',
      target: 'public.restored',
      archives: 2,
      totalArchives: 4,
      rows: 1500,
      rowsPerSecond: 150,
      etaSeconds: 10,
    });
    expect(end).toEqual({
      database: 'app',
      target: 'public.restored',
      archives: 4,
      totalArchives: 4,
      rows: 1500,
      rowsPerSecond: 75,
      status: 'failed',
    });
    expect(formatRestoreProgress(midway)).toBe('2 of 4 archives, 1,500 rows, 150 rows/s, 0:10 left');
  });

  it('knows no time left before the first group ends, nor the total before the plan', () => {
    // Prepare
    const progress = new RestoreProgress(() => 0);

    // Act
    const before = progress.snapshot();

    // Assess
    expect(before.etaSeconds).toBeUndefined();
    expect(formatRestoreProgress(before)).toBe('0 archives, 0 rows, 0 rows/s');
  });

  it('formats the time left as m:ss or h:mm:ss', () => {
    // Act, Assess
    expect([formatEta(5), formatEta(65), formatEta(3725)]).toEqual(['0:05', '1:05', '1:02:05']);
  });
});
