import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli as cli } from '../../support/cli-process.js';
import {
  createTestDatabase,
  seedEvents,
  type TestDatabase,
  writeTestConfig,
} from '../../support/fixtures.js';
import { recordProof } from '../../support/proof-ledger.js';

describe('hold clear on a table the config holds', () => {
  let files: ReturnType<typeof writeTestConfig>;
  const hold = (...args: string[]) =>
    cli('hold', ...args, '-c', files.configPath, '-s', join(files.dir, 'state'));

  beforeAll(() => {
    // Prepare: the config holds public.events; the hold commands never connect to the database.
    files = writeTestConfig({ url: 'postgres://archiver@127.0.0.1:1/app' }, [
      { name: 'events', timestampColumn: 'created_at', legalHold: 'case 2025-17' },
      { name: 'other', timestampColumn: 'created_at' },
    ]);
  });
  afterAll(() => files?.cleanup());

  it('says the table stays held by the config, and exits 1, whether or not the lock table held it too', () => {
    // Act
    const set = hold('set', 'app', 'public.events', '--reason', 'court order', '--new-state');
    const cleared = hold('clear', 'app', 'public.events');
    const again = hold('clear', 'app', 'public.events');

    // Assess: neither reads as the table being free for the next run, which skips it as held
    expect(set.status).toBe(0);
    for (const result of [cleared, again]) {
      expect(result.stdout).toMatch(
        /app\/public\.events stays under the config's legal hold \(case 2025-17\)/,
      );
      expect(result.status).toBe(1);
    }
    expect(cleared.stdout).toMatch(/^app\/public\.events: the lock table's hold is cleared; /);
    expect(again.stdout).toMatch(/^app\/public\.events: no hold in the lock table; /);
  });

  it('clears a hold of the lock table alone as before, and exits 0', () => {
    // Act
    const set = hold('set', 'app', 'public.other', '--reason', 'court order');
    const cleared = hold('clear', 'app', 'public.other');
    const again = hold('clear', 'app', 'public.other');

    // Assess
    expect(set.status).toBe(0);
    expect(cleared.stdout).toBe('app/public.other: hold cleared\n');
    expect(cleared.status).toBe(0);
    expect(again.stdout).toBe('app/public.other had no hold in the lock table\n');
    expect(again.status).toBe(0);
  });
});

describe('hold commands with an empty --actor (a script\'s unset variable: --actor "$OPERATOR")', () => {
  let files: ReturnType<typeof writeTestConfig>;
  const hold = (...args: string[]) =>
    cli('hold', ...args, '-c', files.configPath, '-s', join(files.dir, 'state'));

  beforeAll(() => {
    files = writeTestConfig({ url: 'postgres://archiver@127.0.0.1:1/app' }, [
      { name: 'events', timestampColumn: 'created_at' },
    ]);
  });
  afterAll(() => files?.cleanup());

  it('refuses before changing anything: the hold change and its audit event go together or not at all', () => {
    // Act
    const set = hold('set', 'app', 'public.events', '--reason', 'court order', '--actor', '', '--new-state');
    const afterSet = hold('list', '--json');
    hold('set', 'app', 'public.events', '--reason', 'court order', '--actor', 'alice', '--new-state');
    const clear = hold('clear', 'app', 'public.events', '--actor', '');
    const afterClear = hold('list', '--json');

    // Assess: each refused as a usage error naming --actor, and the lock table as it was (before: the hold was set,
    // then lifted, each time with no legal-hold-changed event, while the command said it was a usage error)
    for (const refused of [set, clear]) {
      expect(refused.status).toBe(2);
      expect(refused.stderr).toMatch(/--actor/);
    }
    // The refused set made not even the state dir, which hold list then refuses (a mistyped one would be the same).
    expect(afterSet.status).toBe(2);
    expect(afterSet.stderr).toMatch(/--state-dir: no local state in /);
    expect(JSON.parse(afterClear.stdout)).toMatchObject([{ table: 'public.events', setBy: 'alice' }]);
  });
});

describe('hold commands given a state dir that is not there (mistyped, or the installed command typed elsewhere)', () => {
  let files: ReturnType<typeof writeTestConfig>;
  const hold = (stateDir: string, ...args: string[]) =>
    cli('hold', ...args, '-c', files.configPath, '-s', join(files.dir, stateDir));

  beforeAll(() => {
    files = writeTestConfig({ url: 'postgres://archiver@127.0.0.1:1/app' }, [
      { name: 'events', timestampColumn: 'created_at' },
    ]);
  });
  afterAll(() => files?.cleanup());

  it('refuses to record a hold there, which no run would see; --new-state records one before the first run', () => {
    // Prepare: the state dir the runs use, made by a hold placed before the first run
    const first = hold('state', 'set', 'app', 'public.events', '--reason', 'case 2025-16', '--new-state');

    // Act: a hold for another case and a clear, each with the state dir mistyped
    const set = hold('sate', 'set', 'app', 'public.events', '--reason', 'case 2025-17');
    const cleared = hold('sate', 'clear', 'app', 'public.events');
    const listed = hold('state', 'list', '--json');

    // Assess: before, the hold was recorded in a state dir made for it, exit 0, and the next local run (on the
    // state dir it uses) archived and deleted the held rows.
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'places a hold with a mistyped --state-dir (or the installed command typed in another folder)',
      held: set.status !== 0 && !existsSync(join(files.dir, 'sate')),
    });
    expect(first.status).toBe(0);
    for (const refused of [set, cleared]) {
      expect(refused.status).toBe(2);
      expect(refused.stderr).toMatch(
        /--state-dir: no local state in .*sate \(a local run makes it, or hold set --new-state\)/,
      );
    }
    expect(existsSync(join(files.dir, 'sate'))).toBe(false);
    expect(JSON.parse(listed.stdout)).toMatchObject([{ table: 'public.events', reason: 'case 2025-16' }]);
  });
});

describe('read-only commands given a state dir that is not there (mistyped)', () => {
  let db: TestDatabase;
  let files: ReturnType<typeof writeTestConfig>;
  const at = (stateDir: string, ...args: string[]) =>
    cli(...args, '-c', files.configPath, '-s', join(files.dir, stateDir));

  beforeAll(async () => {
    db = await createTestDatabase();
    await seedEvents(db.client, 'events', 100);
    files = writeTestConfig(db, [{ name: 'events', timestampColumn: 'created_at' }]);
  });
  afterAll(async () => {
    files?.cleanup();
    await db?.drop();
  });

  it('plan, cost and local doctor read it as unused and say so, without creating it; local restore refuses it', () => {
    // Prepare: the real state dir holds the table.
    expect(
      at('state', 'hold', 'set', 'app', 'public.events', '--reason', 'case 1', '--new-state').status,
    ).toBe(0);

    // Act: the operator mistypes the state dir.
    const plan = at('stat', 'plan');
    const cost = at('stat', 'cost', '--local');
    const doctor = at('stat', 'local', 'doctor');
    const restore = at('stat', 'local', 'restore', '-d', 'app', '-t', 'public.events');
    const holds = at('stat', 'hold', 'list');

    // Assess: before, each created the mistyped dir (plan reporting "legal hold: none"), after which hold list and
    // status took it too and reported the table free.
    recordProof({
      kind: 'threat',
      actor: 'operator',
      attack: 'runs plan, cost, local doctor and local restore with a mistyped --state-dir, then hold list',
      held: !existsSync(join(files.dir, 'stat')) && holds.status === 2,
    });
    expect(existsSync(join(files.dir, 'stat'))).toBe(false);
    for (const result of [plan, cost, doctor])
      expect(result.stderr).toContain(
        `note: no local state in ${join(files.dir, 'stat')}: read as a state dir no run has used`,
      );
    expect(plan.stdout).toMatch(/legal hold: none/);
    expect(plan.status).toBe(0);
    expect(restore.status).toBe(2);
    expect(restore.stderr).toMatch(/--state-dir: no local state in/);
    expect(holds.status).toBe(2);
    expect(at('state', 'plan').stdout).toMatch(/legal hold: legal hold \(set .*\): case 1/);
  });
});
