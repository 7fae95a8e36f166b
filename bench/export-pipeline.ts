/**
 * `npm run bench:export -- --rows 300000 --runs 10`: export's row pipeline alone, without S3 or the workflow,
 * against the baseline of issue 14 on the same rows. Seeds the shared table (bench/audit_logs.sql) in embedded
 * PostgreSQL, then per round:
 * - baseline: `COPY (SELECT row_to_json(t) ...) TO STDOUT` through gzip into a discarding sink;
 * - per variant, pipeline: export's binary COPY (rowValuesCopySql, SPANS_PER_COPY days per COPY) →
 *   CopyToArchiveLines (lines, content SHA-256, version digest) → per day the staging chain (fault point → gzip →
 *   compressed SHA-256) into a discarding sink, as lambdas/export/core.ts stages objects;
 * - per variant, replay: the same pipeline fed from the binary COPY's bytes held in memory: this process's share.
 * `--variants write:head:chunk,…` (bytes; 0 is the stream's default) sets core.ts's WRITE_BYTES, HEAD_BYTES and
 * GZIP_CHUNK_BYTES; the default compares export before them (1:0:0) with export now. Prints per run wall time, this
 * process's CPU (all threads: gzip runs on libuv's pool; and its main thread's) and the COPY backend's CPU, then the
 * medians and ranges over the rounds, and a digest of every object's figures and compressed SHA-256: one digest
 * means every variant wrote the same bytes. Other work on the machine moves absolute figures a lot: compare the
 * variants within a run. `--replay-only` runs only the replays, `--profile` only the pipelines (for `--cpu-prof`).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createGzip } from 'node:zlib';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { z } from 'zod';
import { GZIP_CHUNK_BYTES, HEAD_BYTES, WRITE_BYTES } from '../lambdas/export/core.js';
import { midStreamFaultPoint } from '../lambdas/export/mid-stream-fault.js';
import { CopyToArchiveLines, type ObjectLines } from '../lambdas/shared/archive/copy-to-lines.js';
import { ByteFigures } from '../lambdas/shared/archive/stream.js';
import { VersionDigest } from '../lambdas/shared/archive/version-digest.js';
import { retentionCutoff } from '../lambdas/shared/config/governance.js';
import { sessionSetupSql } from '../lambdas/shared/database/db.js';
import { describeTable, type TableShape } from '../lambdas/shared/database/table-shape.js';
import { quoteLiteral, rowValuesCopySql } from '../lambdas/shared/database/table-sql.js';
import { createAuditLogsTable } from '../local/audit-table.js';
import { type PostgresVersion, startLocalPostgres } from '../local/postgres.js';
import { median } from './median.js';

const RETENTION_DAYS = 40;
/** As export: at most this many days' objects per COPY (core.ts SPANS_PER_COPY). */
const SPANS_PER_COPY = 8;
const DAY_MS = 86_400_000;
const CLOCK_TICKS = 100;

interface Timing {
  wall: number;
  /** CPU seconds of this process (user + system, every thread). */
  cpu: number;
  /** Of which its main thread's (the rest: gzip on libuv's pool, V8's GC helpers). */
  main: number;
  /** CPU seconds of the PostgreSQL backend that ran the COPY. */
  backend: number;
}

/** A sink that counts and drops what it gets. */
const discard = () =>
  new Writable({
    write(_chunk: Buffer, _encoding, done) {
      done();
    },
  });

/** CPU seconds of a process so far, from /proc (Linux). */
function processCpu(pid: number, path = `/proc/${pid}/stat`): number {
  const stat = readFileSync(path, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** CPU seconds of a thread of this process (Linux). */
const threadCpu = (tid: number) => processCpu(tid, `/proc/self/task/${tid}/stat`);

async function timed(backendPid: number, work: () => Promise<unknown>): Promise<Timing> {
  const main = threadCpu(process.pid);
  const cpu = process.cpuUsage();
  const backend = processCpu(backendPid);
  const started = performance.now();
  await work();
  const used = process.cpuUsage(cpu);
  return {
    wall: (performance.now() - started) / 1000,
    cpu: (used.user + used.system) / 1e6,
    main: threadCpu(process.pid) - main,
    backend: processCpu(backendPid) - backend,
  };
}

/** The baseline: PostgreSQL's row_to_json through gzip. */
async function baseline(client: pg.Client, cutoff: string, level: number): Promise<void> {
  const copy = client.query(
    copyTo(
      `COPY (SELECT row_to_json(t) FROM public.audit_logs t WHERE created_at < ${quoteLiteral(cutoff)}) TO STDOUT`,
    ),
  );
  await pipeline(copy, createGzip({ level }), discard());
}

/** One object's staging chain as core.ts's StagingStream builds it, into a discarding sink instead of an upload. */
class Staging {
  private readonly head: Transform;
  readonly compressed = new ByteFigures();
  readonly flowing: Promise<void>;

  constructor({ level, headBytes, gzipChunk }: Variant) {
    this.head = midStreamFaultPoint(() => undefined, headBytes);
    const gzip = createGzip({ level, ...(gzipChunk ? { chunkSize: gzipChunk } : {}) });
    this.flowing = pipeline(this.head, gzip, this.compressed, discard());
  }

  async write(lines: Buffer): Promise<void> {
    if (!this.head.write(lines)) await new Promise((resolve) => this.head.once('drain', resolve));
  }

  async end(): Promise<string> {
    this.head.end();
    await this.flowing;
    return this.compressed.sha256();
  }
}

/**
 * Export's loop over one COPY's chunks (core.ts stageSpans): lines per chunk, a staging chain per object. Returns
 * each object's figures and compressed SHA-256, for comparing variants' output.
 */
async function stage(
  chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
  columns: string[],
  versions: VersionDigest,
  variant: Variant,
): Promise<string[]> {
  const lines = new CopyToArchiveLines(columns, versions);
  const figures: string[] = [];
  const ended: Promise<void>[] = [];
  let open: Staging | undefined;
  const close = (object: ObjectLines, staging: Staging) =>
    ended.push(
      staging.end().then((sha) => {
        figures[object.object] = `${object.rows} ${object.uncompressedBytes} ${object.contentSha256} ${sha}`;
      }),
    );
  for await (const chunk of chunks) {
    for (let offset = 0; ; ) {
      offset = lines.read(chunk, offset);
      const out = lines.lines(lines.atAnotherObject ? 0 : variant.writeBytes);
      if (out) await open?.write(out);
      if (!lines.atAnotherObject) break;
      const { ended: object } = lines.nextObject();
      if (open && object) close(object, open);
      open = new Staging(variant);
    }
  }
  const rest = lines.lines();
  if (rest) await open?.write(rest);
  const last = lines.finish();
  if (open && last) close(last, open);
  await Promise.all(ended);
  return figures;
}

/** The day predicates of the eligible rows, SPANS_PER_COPY to a COPY, as export's batches cut them. */
function copies(shape: TableShape, from: number, cutoff: string): string[] {
  const days: string[] = [];
  for (let day = from; day < Date.parse(cutoff); day += DAY_MS) {
    const end = Math.min(day + DAY_MS, Date.parse(cutoff));
    days.push(
      `t.created_at >= ${quoteLiteral(new Date(day).toISOString())} AND t.created_at < ${quoteLiteral(new Date(end).toISOString())}`,
    );
  }
  const out: string[] = [];
  for (let i = 0; i < days.length; i += SPANS_PER_COPY)
    out.push(rowValuesCopySql(shape, days.slice(i, i + SPANS_PER_COPY)));
  return out;
}

/** What a run varies: gzip's level, and how many bytes of lines are passed on at once (core.ts WRITE_BYTES). */
interface Variant {
  level: number;
  writeBytes: number;
  /** What the staging chain's head buffers before a write waits (0: the stream default). */
  headBytes: number;
  /** gzip's output buffer (zlib's chunkSize; 0: its default, 16 KB). */
  gzipChunk: number;
}

/** Each object's COPY through `stage`: from the server (`sqls`), or replayed from memory (`recorded`). */
async function runObjects(
  sources: readonly (AsyncIterable<Buffer> | Buffer[] | (() => AsyncIterable<Buffer>))[],
  shape: TableShape,
  variant: Variant,
) {
  const versions = new VersionDigest();
  const figures: string[] = [];
  const names = shape.columns.map((c) => c.name);
  for (const source of sources)
    figures.push(
      ...(await stage(typeof source === 'function' ? source() : source, names, versions, variant)),
    );
  return { figures, versions: versions.value() };
}

const exportPipeline = (client: pg.Client, sqls: string[], shape: TableShape, variant: Variant) =>
  // Each COPY starts only when the one before it ended: one connection runs one at a time.
  runObjects(
    sqls.map((sql) => () => client.query(copyTo(sql)) as unknown as AsyncIterable<Buffer>),
    shape,
    variant,
  );

const replay = (recorded: Buffer[][], shape: TableShape, variant: Variant) =>
  runObjects(recorded, shape, variant);

const spread = (values: number[]) =>
  `median ${median(values).toFixed(3)} (${Math.min(...values).toFixed(3)}–${Math.max(...values).toFixed(3)})`;

const OptionsSchema = z.object({
  rows: z.coerce.number().int().min(1000),
  runs: z.coerce.number().int().min(1),
  level: z.coerce.number().int().min(1).max(9),
  postgres: z.coerce.number().pipe(z.union([z.literal(14), z.literal(18)])),
  profile: z.boolean(),
  replayOnly: z.boolean(),
  variants: z
    .string()
    .transform((text) => text.split(',').map((variant) => variant.split(':').map(Number)))
    .pipe(
      z.array(z.tuple([z.number().int().min(1), z.number().int().min(0), z.number().int().min(0)])).min(1),
    ),
});

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rows: { type: 'string', default: '300000' },
      runs: { type: 'string', default: '5' },
      level: { type: 'string', default: '3' },
      postgres: { type: 'string', default: '18' },
      profile: { type: 'boolean', default: false },
      'replay-only': { type: 'boolean', default: false },
      variants: { type: 'string', default: `1:0:0,${WRITE_BYTES}:${HEAD_BYTES}:${GZIP_CHUNK_BYTES}` },
    },
  });
  const options = OptionsSchema.parse({
    ...values,
    replayOnly: values['replay-only'],
  });
  const server = await startLocalPostgres(options.postgres as PostgresVersion);
  const client = new pg.Client({ connectionString: server.url() });
  try {
    await client.connect();
    await createAuditLogsTable(client, options.rows);
    await client.query(sessionSetupSql({ statementTimeoutSeconds: 0, lockTimeoutSeconds: 0 }));
    await client.query('SET max_parallel_workers_per_gather = 0');
    const backendPid = Number((await client.query('SELECT pg_backend_pid() AS p')).rows[0].p);
    const cutoff = retentionCutoff(Date.now(), RETENTION_DAYS);
    const oldest = (await client.query('SELECT min(created_at) AS m FROM public.audit_logs')).rows[0]
      .m as Date;
    const from = Math.floor(oldest.getTime() / DAY_MS) * DAY_MS;
    const eligible = Number(
      (await client.query('SELECT count(*) AS n FROM public.audit_logs WHERE created_at < $1', [cutoff]))
        .rows[0].n,
    );
    const shape = await describeTable(client, {
      database: 'bench',
      schema: 'public',
      name: 'audit_logs',
      ref: 'public.audit_logs',
      timestampColumn: 'created_at',
      timestampTimeZone: 'UTC',
    } as Parameters<typeof describeTable>[1]);
    const sqls = copies(shape, from, cutoff);
    const recorded: Buffer[][] = [];
    for (const sql of sqls) {
      const chunks: Buffer[] = [];
      for await (const chunk of client.query(copyTo(sql)) as unknown as AsyncIterable<Buffer>)
        chunks.push(chunk);
      recorded.push(chunks);
    }
    const copyBytes = recorded.flat().reduce((sum, chunk) => sum + chunk.length, 0);
    console.log(
      `${eligible.toLocaleString('en-US')} eligible rows in ${sqls.length} COPYs (${(copyBytes / 1e6).toFixed(1)} MB of binary COPY), gzip level ${options.level}`,
    );
    const outputs = new Set<string>();
    const keep = (result: { figures: string[]; versions: string }) =>
      outputs.add(
        createHash('sha256').update(result.figures.join('\n')).update(result.versions).digest('hex'),
      );
    const variants = options.variants.map(([writeBytes, headBytes, gzipChunk]) => ({
      level: options.level,
      writeBytes,
      headBytes,
      gzipChunk,
    }));
    const name = (variant: Variant) =>
      `write ${variant.writeBytes} B, head ${variant.headBytes || 'default'}, gzip chunk ${variant.gzipChunk || 'default'}`;
    const rounds: { base: Timing; pipe: Timing[]; replay: Timing[] }[] = [];
    const replays: Timing[][] = [];
    const show = (what: string, t: Timing) =>
      `${what} ${t.wall.toFixed(3)} s wall, ${t.cpu.toFixed(3)} s CPU (main thread ${t.main.toFixed(2)}), backend ${t.backend.toFixed(2)} s`;
    for (let run = 0; run < options.runs; run += 1) {
      if (options.profile || options.replayOnly) {
        // Variants alternate within a round; the replay's minimum CPU over rounds is its least disturbed cost.
        for (const [i, variant] of variants.entries()) {
          const re = options.profile
            ? await timed(backendPid, async () => keep(await exportPipeline(client, sqls, shape, variant)))
            : await timed(backendPid, async () => keep(await replay(recorded, shape, variant)));
          replays[i] = [...(replays[i] ?? []), re];
          console.log(`${name(variant)}: ${show(options.profile ? 'pipeline' : 'replay', re)}`);
        }
        continue;
      }
      const base = await timed(backendPid, () => baseline(client, cutoff, options.level));
      const round = { base, pipe: [] as Timing[], replay: [] as Timing[] };
      console.log(`run ${run + 1}: ${show('baseline', base)}`);
      for (const variant of variants) {
        const pipe = await timed(backendPid, async () =>
          keep(await exportPipeline(client, sqls, shape, variant)),
        );
        const re = await timed(backendPid, async () => keep(await replay(recorded, shape, variant)));
        round.pipe.push(pipe);
        round.replay.push(re);
        console.log(
          `  ${name(variant)}: ${show('pipeline', pipe)}; replay ${re.wall.toFixed(3)} s wall, ${re.cpu.toFixed(3)} s CPU; ratio ${(base.wall / pipe.wall).toFixed(3)}`,
        );
      }
      rounds.push(round);
    }
    console.log(`output digests: ${[...outputs].join(', ')} (one: every run wrote the same bytes)`);
    for (const [i, runs] of replays.entries()) {
      const cpu = runs.map((r) => r.cpu);
      const main = runs.map((r) => r.main);
      console.log(
        `${name(variants[i] as Variant)}: process CPU s ${spread(cpu)} (min ${((Math.min(...cpu) / eligible) * 1e6).toFixed(2)} µs/row); main thread ${spread(main)}; wall ${spread(runs.map((r) => r.wall))}`,
      );
    }
    if (rounds.length === 0) return;
    const of = (pick: (r: (typeof rounds)[number]) => number) => rounds.map(pick);
    console.log(
      `baseline: wall s ${spread(of((r) => r.base.wall))}; process CPU s ${spread(of((r) => r.base.cpu))}; backend CPU s ${spread(of((r) => r.base.backend))}; main thread ${spread(of((r) => r.base.main))}`,
    );
    variants.forEach((variant, i) => {
      const pipe = (r: (typeof rounds)[number]) => r.pipe[i] as Timing;
      const re = (r: (typeof rounds)[number]) => r.replay[i] as Timing;
      console.log(`${name(variant)}:`);
      console.log(`  ratio (baseline wall / pipeline wall) ${spread(of((r) => r.base.wall / pipe(r).wall))}`);
      console.log(
        `  pipeline: wall s ${spread(of((r) => pipe(r).wall))}; process CPU s ${spread(of((r) => pipe(r).cpu))}; backend CPU s ${spread(of((r) => pipe(r).backend))}; main thread ${spread(of((r) => pipe(r).main))}`,
      );
      console.log(
        `  replay: wall s ${spread(of((r) => re(r).wall))}; process CPU s ${spread(of((r) => re(r).cpu))}`,
      );
      const first = (r: (typeof rounds)[number]) => r.pipe[0] as Timing;
      console.log(
        `  against the first variant in the same round: pipeline CPU ${spread(of((r) => pipe(r).cpu / first(r).cpu))}, wall ${spread(of((r) => pipe(r).wall / first(r).wall))}`,
      );
      console.log(
        `  process CPU per row µs: pipeline ${spread(of((r) => (pipe(r).cpu / eligible) * 1e6))}, replay ${spread(of((r) => (re(r).cpu / eligible) * 1e6))}; process CPU pipeline / baseline ${spread(of((r) => pipe(r).cpu / r.base.cpu))}`,
      );
    });
  } finally {
    await client.end().catch(() => undefined);
    await server.stop();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error: Error) => {
    console.error(`${error.name}: ${error.message}`);
    process.exitCode = 1;
  });
}
