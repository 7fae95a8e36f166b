import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { archiveKey, type Manifest, manifestKeyFor } from '../../lambdas/shared/archive/format.js';
import type { LocalEnvironment } from '../../local/run.js';
import { asBeforeTheInventory, type LiveArchive, putObjects } from './fixtures.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * What a bucket writer plants: an archive of `lines` (exactly these bytes, gzipped) with the manifest of a genuine
 * archive of the table, its figures stated truthfully and its key naming the content, then `edit`ed. Unless told
 * otherwise, the table's lease item is made as before the inventory began (asBeforeTheInventory), so that restore reads
 * the archive as one written before the inventory existed, which is how such content can reach it. Returns the key and
 * the manifest.
 */
export async function plantArchive(
  local: LocalEnvironment,
  genuine: LiveArchive,
  lines: string,
  edit: (manifest: Manifest) => Manifest = (manifest) => manifest,
  { beforeTheInventory = true }: { beforeTheInventory?: boolean } = {},
): Promise<{ key: string; manifest: Manifest }> {
  const bytes = Buffer.from(lines, 'utf8');
  const gz = gzipSync(bytes);
  const contentSha256 = sha256(bytes);
  const { schema, table, day } = genuine.manifest;
  const key = archiveKey(
    { prefix: local.config.s3.prefix, database: 'app', schema, table },
    day,
    contentSha256,
    genuine.manifest.span ?? 'day',
  );
  const manifest = edit({
    ...genuine.manifest,
    dataKey: key,
    figures: {
      rowCount: lines.split('\n').filter((line) => line.length > 0).length,
      contentSha256,
      compressedSha256: sha256(gz),
      uncompressedBytes: bytes.length,
      compressedBytes: gz.length,
    },
  });
  if (beforeTheInventory) await asBeforeTheInventory(local, `${schema}.${table}`);
  await putObjects(
    local,
    new Map([
      [key, gz],
      [manifestKeyFor(key), Buffer.from(JSON.stringify(manifest, null, 2), 'utf8')],
    ]),
  );
  return { key, manifest };
}

/** A line of the genuine archive's first row with `changes`, its keys in the archive's order. */
export function changedLine(genuine: LiveArchive, changes: Record<string, unknown>): string {
  const row = JSON.parse(genuine.lines[0] ?? '{}') as Record<string, unknown>;
  return JSON.stringify({ ...row, ...changes });
}
