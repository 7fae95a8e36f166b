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
});
