import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { blockedDirectory } from '../../local/postgres.js';

describe('the directories the postgres user must enter (as root)', () => {
  // Another user than this process's: only the directories' "others" bits let it in.
  const stranger = { uid: 54_321, gid: 54_321 };
  let root = '';

  afterEach(() => {
    if (root) chmodSync(root, 0o755);
    rmSync(root, { recursive: true, force: true });
  });

  function checkoutUnder(mode: number): string {
    root = mkdtempSync(join(tmpdir(), 'blocked-'));
    const bin = join(root, 'project', 'node_modules', 'bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'initdb'), '');
    chmodSync(root, mode);
    return join(bin, 'initdb');
  }

  it('names a private directory (mode 700, as mktemp -d makes it) on the way to a binary', () => {
    // Prepare
    const initdb = checkoutUnder(0o700);

    // Act
    const blocked = blockedDirectory(initdb, stranger);

    // Assess
    expect(blocked).toBe(root);
  });

  it('finds nothing blocked when every directory lets others enter', () => {
    // Prepare
    const initdb = checkoutUnder(0o711);

    // Act
    const blocked = blockedDirectory(initdb, stranger);

    // Assess
    expect(blocked).toBeUndefined();
  });

  it('stops at a directory that does not exist yet (it is created later, open to others)', () => {
    // Prepare
    checkoutUnder(0o755);

    // Act
    const blocked = blockedDirectory(join(root, 'state', 'demo', 'pgdata'), stranger);

    // Assess
    expect(blocked).toBeUndefined();
  });
});
