import { describe, expect, it } from 'vitest';
import { manifestKeyFor } from '../../../../lambdas/shared/archive/format.js';
import type { ArchiveStore } from '../../../../lambdas/shared/archive/store.js';
import { targetTemplate } from '../../../../lambdas/shared/restore/create-target.js';
import { FIXTURE_ARCHIVE_KEY, fixtureManifest } from '../../../support/manifest-fixture.js';

/** A manifest every check of readExpectation passes but for its `columns`, under the content-addressed key it names. */
function planted(columns: number): { key: string; text: string } {
  const manifest = fixtureManifest({
    columns: Array.from({ length: columns }, (_, i) => ({
      name: `c${i}`,
      type: 'text',
      nullable: true,
      generated: false,
    })),
    keyColumns: ['c0'],
    timestampColumn: 'c1',
  });
  return { key: FIXTURE_ARCHIVE_KEY, text: JSON.stringify(manifest) };
}

const storeOf = (texts: Map<string, string>) =>
  ({ getText: async (key: string) => texts.get(key) }) as unknown as ArchiveStore;

describe('targetTemplate: the table a dropped source is created as', () => {
  // A manifest of more columns than a table can have is none export wrote: 4 MiB of one holds some 70,000, kept whole
  // for every archive (10 MB apiece parsed, 32 read at once), so a bucket writer's few dozen would fill the plan
  // function's 512 MB.
  it.each([
    [1600, 'takes its shape from a manifest of as many columns as PostgreSQL allows', 1600],
    [1601, 'takes nothing from a manifest listing more columns than a table can have', undefined],
  ])('%i columns: %s', async (columns, _case, expected) => {
    // Prepare
    const { key, text } = planted(columns);

    // Act
    const template = await targetTemplate(
      storeOf(new Map([[manifestKeyFor(key), text]])),
      [key],
      new Map(),
      false,
    );

    // Assess
    expect(template?.columns.length).toBe(expected);
  });
});
