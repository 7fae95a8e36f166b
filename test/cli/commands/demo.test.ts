import { describe, expect, it } from 'vitest';
import { demoRestoreHint } from '../../../cli/commands/demo.js';

describe('demo: the restore hint', () => {
  it('names the state dir the demo used when it is not the default, quoted for the shell', () => {
    // Act and assess
    expect(demoRestoreHint('.audit-archiver', 0)).toBe(
      'Bring the rows back with: npm run cli -- local restore --demo',
    );
    expect(demoRestoreHint('/tmp/demo-state', 0)).toBe(
      'Bring the rows back with: npm run cli -- local restore --demo --state-dir /tmp/demo-state',
    );
    expect(demoRestoreHint("my demo's state", 0)).toBe(
      "Bring the rows back with: npm run cli -- local restore --demo --state-dir 'my demo'\\''s state'",
    );
  });

  it('is not given after a run that failed: there is nothing to bring back', () => {
    // Act and assess
    expect(demoRestoreHint('.audit-archiver', 1)).toBeUndefined();
  });
});
