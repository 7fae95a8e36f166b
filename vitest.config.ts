import { defineConfig, type TestProjectInlineConfiguration } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Integration and end-to-end files: they need an embedded PostgreSQL, most also the local S3 and DynamoDB. */
const integration = [
  'test/lambdas/**/*.int.test.ts',
  'test/cli/**/*.int.test.ts',
  'test/local/**/*.test.ts',
  'test/proofs/**/*.test.ts',
];

/**
 * The integration files that run on PostgreSQL 14 as well as 18, each with what in it depends on the server. The
 * others drive the workflow through SQL these files already prove on both versions, so `npm test` runs them on the
 * newest only; `PROOF_PG=14 npm run proof` runs the whole proof suite on 14.
 */
const ON_BOTH_VERSIONS: Record<string, string> = {
  'test/lambdas/shared/database/table-shape.int.test.ts': 'catalog queries that describe and check a table',
  'test/lambdas/shared/database/table-sql.int.test.ts': 'the row-line SQL and its digest, encodings',
  'test/lambdas/shared/database/db.int.test.ts': 'TLS negotiation and session settings',
  'test/lambdas/shared/database/credentials.int.test.ts':
    'password authentication (SCRAM) and a rotated password',
  'test/lambdas/shared/restore/restore-sql.int.test.ts':
    'type names resolved by the server (to_regtype, format_type)',
  'test/lambdas/shared/batch/batch.int.test.ts':
    'settling a delete by its transaction id (pg_xact_status, the server id)',
  'test/lambdas/shared/batch/throttle.int.test.ts': 'pg_stat_activity: session states and who may see them',
  'test/proofs/value-settings.test.ts':
    'settings that change how values read: lc_monetary (a compiled locale through LOCPATH), xmloption',
  'test/lambdas/export/next-batch.int.test.ts':
    'the UTC day of each row (date_bin) and the spans a batch takes',
  'test/lambdas/delete/core.int.test.ts': 'the delete transaction, its digest and the fenced commit',
  'test/proofs/restore-fidelity.test.ts':
    'generated columns computed in the INSERT, types redefined under their names, data exceptions named by column',
  'test/lambdas/delete/row-versions.int.test.ts':
    'tuple identity (tableoid, ctid, xmin) under HOT and other updates, VACUUM, FREEZE, CLUSTER, partitions',
  'test/proofs/types-and-identifiers.test.ts':
    'the text output of every type, which differs between versions',
  'test/proofs/unusual-values.test.ts':
    'the text of rarer types (xid8, multiranges, jsonpath, "char", xml declarations) and keys under ICU collations',
  'test/proofs/tables.test.ts': 'partitioned tables and views, whose catalogs changed across versions',
  'test/proofs/restore.test.ts':
    'restore SQL: ON CONFLICT, casts between types, sequence and identity resets',
  'test/proofs/restore-legacy.test.ts':
    "the Python tool's values converted through the target column's base type",
  'test/cli/wizard.int.test.ts': 'table discovery from the catalogs (keys, indexes, partitions, sizes)',
  'test/cli/plan.int.test.ts': 'eligible-row counts and the statistics they read',
  'test/cli/cost-measure.int.test.ts': 'pg_stats histograms',
  'test/cli/doctor.int.test.ts': 'privilege checks (has_table_privilege and friends)',
  'test/cli/role-sql.int.test.ts':
    'the archiver role’s grants suffice (pg_control_system, sequences, partitions)',
  'test/proofs/database-role.test.ts':
    "another role's functions, operators, triggers and keys: up to 14 any role may create in public",
};

/**
 * Files that need a process of their own: logs.test.ts sets the log level before Powertools' logger module loads.
 * Every other file shares its worker's module cache with the files before it (`isolate: false`): loading the AWS SDK,
 * pg and the CDK once per worker instead of once per file saves minutes. Files keep their own state apart anyway:
 * each makes its own database, config file, state dir and local servers, and the process-wide caches are keyed by them.
 */
const OWN_PROCESS = ['test/proofs/logs.test.ts'];

/** The two longest files (the 1000-table fleet and the SIGKILL loop) start first, so the others fill in beside them. */
const LONGEST_FIRST = ['test/proofs/fleet.test.ts', 'test/proofs/sigkill.test.ts'];

class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (file: TestSpecification) => {
      const i = LONGEST_FIRST.findIndex((name) => file.moduleId.endsWith(name));
      return i === -1 ? LONGEST_FIRST.length : i;
    };
    return (await super.sort(files)).sort((a, b) => rank(a) - rank(b));
  }
}

function postgresProjects(version: 14 | 18): TestProjectInlineConfiguration[] {
  const everything = version === 18 || process.env.PROOF_PG !== undefined;
  const include = everything ? integration : Object.keys(ON_BOTH_VERSIONS);
  const server = {
    globalSetup: [`test/support/postgres-pg${version}.global.ts`],
    testTimeout: 180_000,
    hookTimeout: 120_000,
  };
  const projects: TestProjectInlineConfiguration[] = [
    { extends: true, test: { name: `pg${version}`, include, exclude: OWN_PROCESS, ...server } },
  ];
  if (everything) {
    projects.push({
      extends: true,
      test: { name: `pg${version}-own-process`, include: OWN_PROCESS, isolate: true, ...server },
    });
  }
  return projects;
}

export default defineConfig({
  test: {
    // Lambda-style JSON logs and EMF metrics stay quiet in tests; tests that assert on them capture them.
    env: {
      POWERTOOLS_LOG_LEVEL: 'ERROR',
      POWERTOOLS_METRICS_DISABLED: 'true',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
    isolate: false,
    // Vitest's default leaves one of this machine's two cores to itself, running one file at a time. Much of an
    // integration file's time is waiting (retry intervals, throttle pauses, outage windows, PostgreSQL), so three
    // files share the two cores.
    maxWorkers: 3,
    sequence: { sequencer: LongestFirst },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: [...integration, 'test/lib/**', 'test/bench/**'],
        },
      },
      { extends: true, test: { name: 'cdk', include: ['test/lib/**/*.test.ts'] } },
      { extends: true, test: { name: 'bench', include: ['test/bench/**/*.test.ts'] } },
      ...postgresProjects(14),
      ...postgresProjects(18),
    ],
  },
});
