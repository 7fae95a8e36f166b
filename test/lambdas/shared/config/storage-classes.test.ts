import { describe, expect, it } from 'vitest';
import {
  COLD_STORAGE_CLASSES,
  isColdStorageClass,
  lifecycleRank,
  STORAGE_CLASSES,
  TRANSITION_STORAGE_CLASSES,
  WRITABLE_STORAGE_CLASSES,
} from '../../../../lambdas/shared/config/storage-classes.js';

describe('storage classes', () => {
  it('derives the written, transition and cold subsets from the one list', () => {
    // Assess
    expect(WRITABLE_STORAGE_CLASSES).toEqual([
      'STANDARD',
      'STANDARD_IA',
      'ONEZONE_IA',
      'INTELLIGENT_TIERING',
      'GLACIER_IR',
    ]);
    expect(TRANSITION_STORAGE_CLASSES).toEqual([
      'STANDARD_IA',
      'INTELLIGENT_TIERING',
      'GLACIER_IR',
      'GLACIER',
      'DEEP_ARCHIVE',
    ]);
    expect(COLD_STORAGE_CLASSES).toEqual(['GLACIER', 'DEEP_ARCHIVE']);
  });

  it("ranks every class in S3's lifecycle order and knows which need a restore", () => {
    // Act
    const waterfall = [...STORAGE_CLASSES].sort((a, b) => lifecycleRank(a) - lifecycleRank(b));

    // Assess
    expect(waterfall).toEqual([
      'STANDARD',
      'STANDARD_IA',
      'INTELLIGENT_TIERING',
      'ONEZONE_IA',
      'GLACIER_IR',
      'GLACIER',
      'DEEP_ARCHIVE',
    ]);
    expect(['GLACIER', 'GLACIER_IR', 'REDUCED_REDUNDANCY'].map(isColdStorageClass)).toEqual([
      true,
      false,
      false,
    ]);
  });
});
