import { createHash } from 'node:crypto';
import { ArnFormat, Duration, NestedStack, RemovalPolicy, Size, Stack } from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { type ObjectSpan, tablePrefix } from '../lambdas/shared/archive/format.js';
import type { ArchiveBucket } from './archive-bucket.js';
import { acknowledgeWildcardResources } from './nag.js';

/**
 * Where the Glue tables go. A CloudFormation stack holds at most 500 resources, and the stack's own ~110 leave no room
 * for a fleet's tables (a run covers 1,000). The first GLUE_TABLES_IN_STACK stay in the stack itself, under the
 * logical ids they always had: a deployed stack updates without replacing them (a replacement creates the new table
 * before it deletes the old, and Glue refuses a second table of the name). The others go in nested stacks of
 * GLUE_TABLES_PER_NESTED_STACK, each one resource of the parent.
 */
export const GLUE_TABLES_IN_STACK = 300;
export const GLUE_TABLES_PER_NESTED_STACK = 400;

/** Partition columns of an archive table, as the key layout names them. */
const PARTITION_COLUMNS = ['year', 'month', 'day'] as const;

/** One archived table, as Athena sees it. */
export interface QueryTable {
  /** Logical database name of the config. */
  readonly database: string;
  readonly schema: string;
  readonly table: string;
  /** Column names as in PostgreSQL; each becomes a `string` column holding the value's text form. */
  readonly columns: readonly string[];
  /**
   * The table's `objectSpan`. A `month` table is partitioned by year and month only: its month objects lie in the
   * month folder, and Athena reads the day folders below it too (day objects written before the table switched).
   * @default 'day'
   */
  readonly objectSpan?: ObjectSpan;
}

export interface ArchiveQueriesProps {
  /** The archive bucket; its key encrypts the query results as well. */
  readonly archiveBucket: ArchiveBucket;
  /** Object prefix of the archives (`s3.prefix`). */
  readonly prefix: string;
  /** One Glue table per archived table. */
  readonly tables: readonly QueryTable[];
  /** Key patterns (relative to the bucket) of the archive areas the query role may read, e.g. "audit/billing/*". */
  readonly archiveAreas: readonly string[];
  /**
   * First year of the `year` partition projection.
   * @default 2000
   */
  readonly firstYear?: number;
  /**
   * Last year of the `year` partition projection.
   * @default 2100
   */
  readonly lastYear?: number;
  /**
   * How long query results are kept.
   * @default Duration.days(30)
   */
  readonly resultsExpiration?: Duration;
  /**
   * Most data one query may scan; Athena cancels it beyond.
   * @default Size.gibibytes(100)
   */
  readonly bytesScannedCutoffPerQuery?: Size;
  /**
   * Who may assume `queryRole`, which reads every archived row (`aws.athena.queryPrincipals`).
   * @default - the account root: any principal of the account whose IAM allows `sts:AssumeRole` on the role
   */
  readonly queryPrincipals?: readonly iam.IPrincipal[];
  /**
   * Name of the Glue database.
   * @default - the stack name, lower-cased, other characters than a-z, 0-9 and "_" replaced by "_"
   */
  readonly databaseName?: string;
  /**
   * Name of the Athena workgroup.
   * @default - the stack name
   */
  readonly workGroupName?: string;
  /**
   * Bucket that receives the results bucket's server access logs (prefix "athena-results/").
   * @default - the archive bucket's access logs bucket
   */
  readonly accessLogsBucket?: s3.IBucket;
  /**
   * What happens to the results bucket and its policy when the stack is deleted.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/** Glue (Hive) names: lower case a-z, 0-9 and "_". */
const glueName = (text: string): string => text.toLowerCase().replace(/[^a-z0-9_]/g, '_');

/**
 * The Glue table of each archived table: "database__schema__table" lower-cased and reduced to [a-z0-9_]. Tables that
 * reduce to one name each get a short hash of their own identity appended, whatever their order in the config: a
 * suffix given by order would hand a name, and the queries saved under it, to another table's archives once the
 * config is reordered.
 */
export function glueTableNames(
  tables: readonly { database: string; schema: string; table: string }[],
): string[] {
  const bases = tables.map((t) => glueName(`${t.database}__${t.schema}__${t.table}`));
  const counts = new Map<string, number>();
  for (const base of bases) counts.set(base, (counts.get(base) ?? 0) + 1);
  return tables.map((t, i) => {
    const base = bases[i] ?? '';
    if ((counts.get(base) ?? 0) < 2) return base;
    const identity = JSON.stringify([t.database, t.schema, t.table]);
    return `${base}_${createHash('sha256').update(identity).digest('hex').slice(0, 8)}`;
  });
}

/**
 * Unique Glue names for `names`, in order: lower-cased and reduced to [a-z0-9_]; a name that is taken (by an
 * earlier one or by `reserved`) gets a short hash of the original appended.
 */
function uniqueGlueNames(names: readonly string[], reserved: readonly string[] = []): string[] {
  const taken = new Set(reserved);
  return names.map((name) => {
    let candidate = glueName(name);
    if (taken.has(candidate)) {
      candidate = `${candidate}_${createHash('sha256').update(name).digest('hex').slice(0, 8)}`;
    }
    taken.add(candidate);
    return candidate;
  });
}

/**
 * Athena over the archives, with no crawler and no grant to any function: a Glue database with one table per archived
 * table, over its key prefix (`{prefix}{database}/{schema}.{table}/`), reading the gzip JSON lines with the OpenX JSON
 * SerDe, every column a `string` (values are PostgreSQL text form; cast in SQL). Partition projection on year/month/day
 * (the rows' UTC day; year/month for a table of month objects) makes new days queryable at once. Manifests start with
 * "_", which Athena skips.
 *
 * Queries run in a dedicated workgroup whose settings clients cannot override: results go to the stack's results
 * bucket (SSE-KMS with the archive key, TLS-only, no public access, expiring), and a per-query scan limit applies.
 * `queryRole` is what operators assume to query: the workgroup, the catalog entries, read on the archive areas.
 */
export class ArchiveQueries extends Construct {
  public readonly database: glue.CfnDatabase;
  public readonly databaseName: string;
  /** Glue tables by "database/schema.table". */
  public readonly tables: Readonly<Record<string, glue.CfnTable>>;
  /** Glue table names by "database/schema.table". */
  public readonly tableNames: Readonly<Record<string, string>>;
  /** The nested stacks that hold the Glue tables past the first GLUE_TABLES_IN_STACK, GLUE_TABLES_PER_NESTED_STACK each at most. */
  public readonly tableStacks: readonly NestedStack[];
  public readonly resultsBucket: s3.Bucket;
  public readonly workGroup: athena.CfnWorkGroup;
  /** The role people assume to run queries: `queryPrincipals`, or any principal of the account IAM lets assume it. */
  public readonly queryRole: iam.Role;

  private readonly archiveBucket: ArchiveBucket;

  constructor(scope: Construct, id: string, props: ArchiveQueriesProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const bucket = props.archiveBucket;
    this.archiveBucket = bucket;
    const bucketName = bucket.bucket.bucketName;
    this.databaseName = props.databaseName ?? glueName(stack.stackName);

    this.database = new glue.CfnDatabase(this, 'Database', {
      catalogId: stack.account,
      databaseInput: {
        name: this.databaseName,
        description: 'audit-archiver: archived rows, one table per archived table',
      },
    });

    const names = glueTableNames(props.tables);
    const tables: Record<string, glue.CfnTable> = {};
    const tableNames: Record<string, string> = {};
    const tableStacks: NestedStack[] = [];
    const tableScope = (i: number): Construct => {
      if (i < GLUE_TABLES_IN_STACK) return this;
      const group = Math.floor((i - GLUE_TABLES_IN_STACK) / GLUE_TABLES_PER_NESTED_STACK);
      const first = GLUE_TABLES_IN_STACK + group * GLUE_TABLES_PER_NESTED_STACK;
      tableStacks[group] ??= new NestedStack(this, `Tables${group}`, {
        description: `audit-archiver: Glue tables ${first + 1} to ${Math.min(props.tables.length, first + GLUE_TABLES_PER_NESTED_STACK)} of the archives`,
      });
      return tableStacks[group];
    };
    props.tables.forEach((table, i) => {
      const name = names[i] ?? '';
      const ref = `${table.database}/${table.schema}.${table.table}`;
      const location = `s3://${bucketName}/${tablePrefix({ prefix: props.prefix, database: table.database, schema: table.schema, table: table.table })}`;
      const monthly = table.objectSpan === 'month';
      const partitions = monthly ? PARTITION_COLUMNS.slice(0, 2) : PARTITION_COLUMNS;
      const columnNames = uniqueGlueNames(table.columns, PARTITION_COLUMNS);
      // Keys are matched exactly: Glue names are lower case, PostgreSQL column names need not be.
      const mappings = Object.fromEntries(
        table.columns.flatMap((column, j) =>
          columnNames[j] === column ? [] : [[`mapping.${columnNames[j]}`, column]],
        ),
      );
      const created = new glue.CfnTable(tableScope(i), `Table${i}`, {
        catalogId: stack.account,
        // The database's Ref (its name; a parameter in a nested stack) orders the table after it.
        databaseName: this.database.ref,
        tableInput: {
          name,
          description: `audit-archiver archives of ${table.schema}.${table.table} in database ${table.database}`,
          tableType: 'EXTERNAL_TABLE',
          parameters: {
            EXTERNAL: 'TRUE',
            classification: 'json',
            compressionType: 'gzip',
            'projection.enabled': 'true',
            'projection.year.type': 'integer',
            'projection.year.range': `${props.firstYear ?? 2000},${props.lastYear ?? 2100}`,
            'projection.month.type': 'integer',
            'projection.month.range': '1,12',
            'projection.month.digits': '2',
            ...(monthly
              ? {
                  'storage.location.template': `${location}year=\${year}/month=\${month}/`,
                }
              : {
                  'projection.day.type': 'integer',
                  'projection.day.range': '1,31',
                  'projection.day.digits': '2',
                  'storage.location.template': `${location}year=\${year}/month=\${month}/day=\${day}/`,
                }),
          },
          partitionKeys: partitions.map((column) => ({ name: column, type: 'string' })),
          storageDescriptor: {
            location,
            columns: columnNames.map((column) => ({ name: column, type: 'string' })),
            inputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
            outputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
            compressed: true,
            serdeInfo: {
              serializationLibrary: 'org.openx.data.jsonserde.JsonSerDe',
              parameters: { 'case.insensitive': 'false', ...mappings },
            },
          },
        },
      });
      tables[ref] = created;
      tableNames[ref] = name;
    });
    this.tables = tables;
    this.tableNames = tableNames;
    this.tableStacks = tableStacks;

    this.resultsBucket = new s3.Bucket(this, 'Results', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: bucket.encryptionKey,
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: props.accessLogsBucket ?? bucket.accessLogsBucket,
      serverAccessLogsPrefix: 'athena-results/',
      lifecycleRules: [
        {
          expiration: props.resultsExpiration ?? Duration.days(30),
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    // Its policy goes with it: a retained results bucket (archived rows, query by query) would otherwise take requests
    // without TLS.
    this.resultsBucket.policy?.applyRemovalPolicy(props.removalPolicy ?? RemovalPolicy.RETAIN);

    this.workGroup = new athena.CfnWorkGroup(this, 'WorkGroup', {
      name: props.workGroupName ?? stack.stackName,
      description: 'audit-archiver: queries over the archives',
      state: 'ENABLED',
      // Query history only; results stay in the (retained) results bucket until they expire.
      recursiveDeleteOption: true,
      workGroupConfiguration: {
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        bytesScannedCutoffPerQuery: (props.bytesScannedCutoffPerQuery ?? Size.gibibytes(100)).toBytes(),
        engineVersion: { selectedEngineVersion: 'AUTO' },
        resultConfiguration: {
          outputLocation: `s3://${this.resultsBucket.bucketName}/`,
          encryptionConfiguration: { encryptionOption: 'SSE_KMS', kmsKey: bucket.encryptionKey.keyArn },
          expectedBucketOwner: stack.account,
        },
      },
    });

    const [first, ...others] = props.queryPrincipals ?? [];
    this.queryRole = new iam.Role(this, 'QueryRole', {
      assumedBy: first ? new iam.CompositePrincipal(first, ...others) : new iam.AccountRootPrincipal(),
      description: 'audit-archiver: run Athena queries over the archives',
    });
    this.grantQuery(this.queryRole, props.archiveAreas);
  }

  /** Every table of the archive tables' Glue database. */
  private get tablesArn(): string {
    return Stack.of(this).formatArn({
      service: 'glue',
      resource: 'table',
      resourceName: `${this.databaseName}/*`,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
  }

  /**
   * Lets `grantee` run queries in the workgroup over the archive tables: the Athena calls on this workgroup only,
   * the Glue catalog entries read-only, the archive areas read-only, and results in the results bucket.
   */
  public grantQuery(grantee: iam.IGrantable, archiveAreas: readonly string[]): void {
    const stack = Stack.of(this);
    const glueArn = (resource: string, resourceName?: string) =>
      stack.formatArn({ service: 'glue', resource, resourceName, arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
    iam.Grant.addToPrincipal({
      grantee,
      actions: [
        'athena:StartQueryExecution',
        'athena:StopQueryExecution',
        'athena:GetQueryExecution',
        'athena:GetQueryResults',
        'athena:GetQueryRuntimeStatistics',
        'athena:ListQueryExecutions',
        'athena:GetWorkGroup',
      ],
      resourceArns: [
        stack.formatArn({
          service: 'athena',
          resource: 'workgroup',
          resourceName: this.workGroup.ref,
          arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
        }),
      ],
    });
    iam.Grant.addToPrincipal({
      grantee,
      actions: [
        'glue:GetDatabase',
        'glue:GetTable',
        'glue:GetTables',
        'glue:GetPartition',
        'glue:GetPartitions',
      ],
      resourceArns: [glueArn('catalog'), glueArn('database', this.databaseName), this.tablesArn],
    });
    acknowledgeWildcardResources(
      grantee,
      [this.tablesArn],
      "The archive tables' Glue database holds only the archiver's tables, one per configured table; listing each " +
        'one would pass the IAM policy size limit for a fleet of tables.',
    );
    this.archiveBucket.grantObjects(grantee, archiveAreas, { read: true });
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:GetBucketLocation'],
      resourceArns: [this.archiveBucket.bucket.bucketArn, this.resultsBucket.bucketArn],
    });
    // Athena writes results with the caller's credentials, encrypted with the archive key.
    const results = this.resultsBucket.arnForObjects('*');
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
      resourceArns: [results],
    });
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['s3:ListBucket', 's3:ListBucketMultipartUploads'],
      resourceArns: [this.resultsBucket.bucketArn],
    });
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
      resourceArns: [this.archiveBucket.encryptionKey.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `s3.${stack.region}.${stack.urlSuffix}` } },
    });
    acknowledgeWildcardResources(
      grantee,
      [results],
      'Athena names each result object after its query id at run time; the bucket holds nothing but results.',
    );
  }
}
