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
});
