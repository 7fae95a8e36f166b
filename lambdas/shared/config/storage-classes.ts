/**
 * The S3 storage classes the archiver deals with, in the order reports and the price table list them. `rank` is
 * S3's lifecycle waterfall (a transition moves objects only to a higher rank); `cold` objects must be restored
 * (S3 RestoreObject) before anyone can read them; `transitionTarget` marks the classes `aws.storage.transitions`
 * may move archives to.
 */
const STORAGE_CLASS_TRAITS = {
  STANDARD: { rank: 0, cold: false, transitionTarget: false },
  STANDARD_IA: { rank: 1, cold: false, transitionTarget: true },
  ONEZONE_IA: { rank: 3, cold: false, transitionTarget: false },
  INTELLIGENT_TIERING: { rank: 2, cold: false, transitionTarget: true },
  GLACIER_IR: { rank: 4, cold: false, transitionTarget: true },
  GLACIER: { rank: 5, cold: true, transitionTarget: true },
  DEEP_ARCHIVE: { rank: 6, cold: true, transitionTarget: true },
} as const;

type Traits = typeof STORAGE_CLASS_TRAITS;
export type StorageClass = keyof Traits;
export type ColdStorageClass = {
  [C in StorageClass]: Traits[C]['cold'] extends true ? C : never;
}[StorageClass];
/** Verify reads an archive back at once, so archives are written only in classes that need no restore. */
export type WritableStorageClass = Exclude<StorageClass, ColdStorageClass>;
export type TransitionStorageClass = {
  [C in StorageClass]: Traits[C]['transitionTarget'] extends true ? C : never;
}[StorageClass];

export const STORAGE_CLASSES = Object.keys(STORAGE_CLASS_TRAITS) as StorageClass[];

/** A class's place in S3's lifecycle order: transitions only go to a higher rank. */
export const lifecycleRank = (storageClass: StorageClass): number => STORAGE_CLASS_TRAITS[storageClass].rank;

export const isColdStorageClass = (storageClass: string): storageClass is ColdStorageClass =>
  Object.hasOwn(STORAGE_CLASS_TRAITS, storageClass) &&
  STORAGE_CLASS_TRAITS[storageClass as StorageClass].cold;

export const COLD_STORAGE_CLASSES = STORAGE_CLASSES.filter(isColdStorageClass);

export const WRITABLE_STORAGE_CLASSES = STORAGE_CLASSES.filter(
  (c): c is WritableStorageClass => !isColdStorageClass(c),
) as [WritableStorageClass, ...WritableStorageClass[]];

/** Lifecycle transition targets of archives, coldest last: the order S3 moves objects in. */
export const TRANSITION_STORAGE_CLASSES = STORAGE_CLASSES.filter(
  (c): c is TransitionStorageClass => STORAGE_CLASS_TRAITS[c].transitionTarget,
).sort((a, b) => lifecycleRank(a) - lifecycleRank(b)) as [
  TransitionStorageClass,
  ...TransitionStorageClass[],
];
