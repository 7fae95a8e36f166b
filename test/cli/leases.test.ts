import { describe, expect, it } from 'vitest';
import { formatStatuses, tableStatuses } from '../../cli/leases.js';
import { parseConfig } from '../../lambdas/shared/config/config.js';

const config = parseConfig({
  s3: { bucket: 'archive-bucket' },
  databases: [
    {
      name: 'app',
      credentials: { urlEnv: 'APP_URL' },
      tables: [{ name: 'audit_logs', timestampColumn: 'created_at' }],
    },
  ],
});

describe('status', () => {
  it.each([
    [{ tables: ['public.nosuch'] }, 'no configured table matches tables public.nosuch'],
    [
      { database: 'app', tables: ['public.nosuch'] },
      'no configured table matches database app and tables public.nosuch',
    ],
    [
      { tables: ['audit_logs'] },
      'no configured table matches tables audit_logs \\(did you mean public\\.audit_logs\\?\\)',
    ],
    [{ tables: ['public.audit_logs', 'audit_log'] }, 'no configured table matches tables audit_log'],
    [
      { tables: ['public.audit_logs', 'audit_logs'] },
      'no configured table matches tables audit_logs \\(did you mean public\\.audit_logs\\?\\)',
    ],
  ])('names what matched no configured table in one plain sentence: %j', async (scope, message) => {
    // Prepare: a lock table with no batch in flight (a name not configured is looked for among those).
    const leases = { tablesWithBatchInFlight: async () => [] };

    // Act
    const refused = tableStatuses(
      { config, leases } as unknown as Parameters<typeof tableStatuses>[0],
      scope,
    );

    // Assess
    await expect(refused).rejects.toThrow(new RegExp(`^${message}$`));
  });

  it('prints a table name and hold reason with terminal escapes escaped, not acted on', () => {
    // Act
    const text = formatStatuses([
      {
        database: 'app',
        table: 'public.log\u001b[2J',
        lease: { state: 'free' },
        legalHold: 'case\u009b1m 17',
        archived: { rows: 0, bytes: 0, batches: 0 },
      },
    ]);

    // Assess
    expect(text).not.toContain('\u001b');
    expect(text).not.toContain('\u009b');
    expect(text).toContain('app/public.log\\u001b[2J');
    expect(text).toContain('legal hold: case\\u009b1m 17');
  });
});
