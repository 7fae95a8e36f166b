import { describe, expect, it } from 'vitest';
import { auditFilter } from '../../cli/audit.js';

describe('audit CLI filter', () => {
  it('reads days as whole days and names the option that is wrong', () => {
    // Act & Assess
    expect(auditFilter({ since: '2025-01-07', until: '2025-01-07' })).toMatchObject({
      since: '2025-01-07T00:00:00.000Z',
      until: '2025-01-07T23:59:59.999Z',
    });
    expect(() => auditFilter({ since: 'yesterday' })).toThrow(/^--since: must be a day/);
    // Not read as March 1st, as Date.parse would.
    expect(() => auditFilter({ until: '2025-02-30' })).toThrow(/^--until: must be a day/);
    expect(() => auditFilter({ since: '2025-01-08', until: '2025-01-07' })).toThrow(
      '--until: must not be before --since',
    );
    expect(() => auditFilter({ kind: ['party'] })).toThrow(/--kind: .*kinds: run-started/);
  });

  it('refuses a time without its offset, which Date.parse reads in the local zone while days and every time printed are UTC', () => {
    // Act & Assess: on a laptop in New York, 16:37 would be read as 21:37Z and leave out five hours of events
    expect(() => auditFilter({ since: '2026-12-06T16:37:00' })).toThrow(
      /^--since: .*no offset.*2026-12-06T16:37:00Z/,
    );
    expect(() => auditFilter({ until: '2026-12-06T16:37' })).toThrow(/^--until: .*no offset/);
    expect(auditFilter({ since: '2026-12-06T16:37:00Z', until: '2026-12-06T18:37:00+02:00' })).toMatchObject({
      since: '2026-12-06T16:37:00.000Z',
      until: '2026-12-06T16:37:00.000Z',
    });
  });

  it('refuses a day written otherwise than YYYY-MM-DD, which Date.parse reads as the start of a day in the local zone', () => {
    // Act & Assess: "--until 2025/01/07" read as the start of January 7th (in New York 05:00Z) left that day's
    // events out, where --until 2025-01-07 takes the whole day; "2025-01" as the start of January, not the month.
    for (const written of [
      '2025/01/07',
      '2025-1-7',
      '1/7/2025',
      'Jan 7 2025',
      '7 January 2025 10:00',
      '2025-01',
      '2025',
      '2025-02-30T10:00Z',
    ])
      expect(() => auditFilter({ until: written }), written).toThrow(
        /^--until: must be a day \(YYYY-MM-DD\)/,
      );
    expect(auditFilter({ since: '2025-01-07 03:15Z', until: '2025-01-07T05:15:00.5+01:00' })).toMatchObject({
      since: '2025-01-07T03:15:00.000Z',
      until: '2025-01-07T04:15:00.500Z',
    });
  });
});
