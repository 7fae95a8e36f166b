import { describe, expect, it } from 'vitest';
import { compareColumns } from '../../../../lambdas/shared/batch/schema-drift.js';

describe('schema drift', () => {
  const col = (name: string, type = 'text', nullable = true) => ({ name, type, nullable, generated: false });

  it('finds added, removed, retyped and re-nulled columns, and a new order', () => {
    // Act
    const drift = compareColumns(
      [col('id', 'bigint', false), col('a'), col('b'), col('gone')],
      [col('id', 'bigint', false), col('b', 'varchar(4)'), col('a', 'text', false), col('new', 'jsonb')],
    );
    // Assess
    expect(drift).toEqual({
      added: [{ name: 'new', type: 'jsonb' }],
      removed: [{ name: 'gone', type: 'text' }],
      retyped: [{ name: 'b', from: 'text', to: 'varchar(4)' }],
      nullability: [{ name: 'a', nullable: false }],
      reordered: true,
    });
    expect(compareColumns([col('id'), col('a')], [col('id'), col('a')])).toBeUndefined();
    expect(compareColumns([col('id'), col('a')], [col('id')])?.reordered).toBe(false);
  });

  it('takes a type in public named without its schema (archives before the pinned search_path) as the same type', () => {
    // Act
    const upgraded = compareColumns(
      [col('id', 'bigint', false), col('mood', 'mood'), col('moods', 'mood[]')],
      [col('id', 'bigint', false), col('mood', 'public.mood'), col('moods', 'public.mood[]')],
    );
    const moved = compareColumns([col('mood', 'mood')], [col('mood', 'app.mood')]);

    // Assess
    expect(upgraded).toBeUndefined();
    expect(moved?.retyped).toEqual([{ name: 'mood', from: 'mood', to: 'app.mood' }]);
  });
});
