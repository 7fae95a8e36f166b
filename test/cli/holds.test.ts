import { describe, expect, it } from 'vitest';
import { formatHolds } from '../../cli/holds.js';
import type { Hold } from '../../lambdas/shared/lock-table/legal-holds.js';

const hold: Hold = {
  database: 'app',
  table: 'public.audit_logs',
  reason: 'case 2026-17',
  setAt: '2026-12-01T10:00:00.000Z',
  setBy: 'legal@example.com',
};

describe('hold list output', () => {
  it('prints one line per hold for a person, and says when there is none', () => {
    // Act and assess
    expect(formatHolds([hold])).toBe(
      'app/public.audit_logs: case 2026-17 (set 2026-12-01T10:00:00.000Z by legal@example.com)',
    );
    expect(formatHolds([])).toBe('No legal holds in the lock table.');
  });

  it('prints a JSON array with --json, an empty one when there is none, so a script can read it', () => {
    // Act and assess
    expect(JSON.parse(formatHolds([hold], { json: true }))).toEqual([hold]);
    expect(JSON.parse(formatHolds([], { json: true }))).toEqual([]);
  });

  it('prints a reason or table name with terminal escapes or line breaks escaped, not acted on', () => {
    // Prepare: a reason that would clear the screen and forge a second hold line
    const hostile = { ...hold, reason: 'x\u001b[2J\napp/public.other: forged' };

    // Act
    const text = formatHolds([hostile]);

    // Assess
    expect(text).toBe(
      'app/public.audit_logs: x\\u001b[2J\\u000aapp/public.other: forged (set 2026-12-01T10:00:00.000Z by legal@example.com)',
    );
  });
});
