import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveTypeName } from '../../../../lambdas/shared/restore/restore-sql.js';
import { createTestDatabase, type TestDatabase } from '../../../support/fixtures.js';

describe('resolveTypeName: a manifest type text, resolved by the server under the pinned search_path', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.client.query(`CREATE TYPE public.mood AS ENUM ('ok', 'sad'); CREATE SCHEMA app;
                           CREATE TYPE app."Level" AS ENUM ('low', 'high')`);
    await db.client.query('SET search_path = pg_catalog, pg_temp');
  });
  afterAll(async () => db?.drop());

  it.each([
    ['integer', 'integer'],
    ['character varying(12)', 'character varying'],
    // Written before the search_path was pinned: a type in public without its schema.
    ['mood', 'public.mood'],
    ['mood[]', 'public.mood[]'],
    ['public.mood', 'public.mood'],
    ['app."Level"', 'app."Level"'],
    ['no_such_type', undefined],
    ['app.no_such_type', undefined],
  ])('reads %s as %s', async (written, resolved) => {
    // Act
    const type = await resolveTypeName(db.client, written);

    // Assess
    expect(type).toBe(resolved);
  });
});
