import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';

/** The item operations the stores in lambdas/shared/lock-table/ issue; grants name them one by one, never `dynamodb:*`. */
export type LockTableAction =
  | 'GetItem'
  | 'BatchGetItem'
  | 'PutItem'
  | 'BatchWriteItem'
  | 'UpdateItem'
  | 'DeleteItem'
  | 'Query';

/**
 * The partition-key areas of the table, as the stores in lambdas/shared/lock-table/ build the keys: `TABLE#db#table`
 * (lease and in-flight batch, lease-store.ts; the latest outcomes, run-records.ts), `ARCHIVES#db#table` (inventory of committed archives;
 * archive-inventory.ts), `RESTORED#db#target` (restore watermark), `RESTORE#restoreId` (restore results) and
 * `RESTORE-WRITES#restoreId` (what a restore's groups wrote, for their retries), `RESTORE-PLAN#restoreId` (the keys
 * of the archives a restore's plan found, which its summary checks; restore-records.ts), `RUN#runId` (outcomes, and
 * the run's children) and `CONFIG` (run-records.ts), `HOLDS` (legal-holds.ts).
 */
export type LockKeyArea =
  | 'tableState'
  | 'inventory'
  | 'restored'
  | 'runOutcomes'
  | 'restoreResults'
  | 'restoreWrites'
  | 'restorePlans'
  | 'holds'
  | 'configFingerprint';

/** Areas whose keys start with a database of the config; the others have one fixed prefix. */
const PER_DATABASE: Partial<Record<LockKeyArea, string>> = {
  tableState: 'TABLE',
  inventory: 'ARCHIVES',
  restored: 'RESTORED',
};
const FIXED: Partial<Record<LockKeyArea, string>> = {
  runOutcomes: 'RUN#*',
  restoreResults: 'RESTORE#*',
  restoreWrites: 'RESTORE-WRITES#*',
  restorePlans: 'RESTORE-PLAN#*',
  holds: 'HOLDS',
  configFingerprint: 'CONFIG',
};

/** A literal in an IAM StringLike pattern: `*`, `?` and `$` become the policy variables that stand for themselves. */
const likeLiteral = (text: string) => text.replace(/[*?$]/g, (c) => `$${'{'}${c}}`);

export interface LockTableProps {
  /** The config's database names: per-database key areas are granted for these databases only. */
  readonly databases: string[];
  /**
   * What happens to the table when the stack is deleted. It holds the in-flight batch of every table, which a
   * later run needs to finish or undo a batch safely.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Whether the table is protected against deletion outside CloudFormation as well.
   * @default true
   */
  readonly deletionProtection?: boolean;
}

/**
 * The lock/progress table: per-table leases with fencing tokens and the in-flight batch (`TABLE#db#table`/`STATE`),
 * and per-run outcomes (`RUN#runId`/`db#table`, beside the names of the run's table executions, `CHILDREN`) that expire through the `ttl` attribute (epoch seconds, 90 days
 * after the run; lambdas/shared/lock-table/table-client.ts). On-demand, point-in-time recovery, deletion protection, retained.
 *
 * Encrypted at rest with the AWS-managed DynamoDB key (aws/dynamodb): items hold lease owners, batch key ranges and
 * counts, never row values, and each function's IAM policy already names the exact operations it may issue. A
 * customer-managed key would add a key policy to keep in step with those grants and a monthly key cost, without
 * excluding any reader that IAM does not already exclude.
 */
export class LockTable extends Construct {
  /** Attribute DynamoDB TTL reads; only run outcomes set it, leases never expire through TTL. */
  public static readonly TTL_ATTRIBUTE = 'ttl';

  public readonly table: dynamodb.Table;

  private readonly databases: string[];

  constructor(scope: Construct, id: string, props: LockTableProps) {
    super(scope, id);
    this.databases = props.databases;
    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      timeToLiveAttribute: LockTable.TTL_ATTRIBUTE,
      deletionProtection: props.deletionProtection ?? true,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
  }

  /** The `dynamodb:LeadingKeys` patterns of these areas. */
  public leadingKeys(areas: LockKeyArea[]): string[] {
    return areas.flatMap((area) => {
      const perDatabase = PER_DATABASE[area];
      if (perDatabase) return this.databases.map((db) => `${perDatabase}#${likeLiteral(db)}#*`);
      return [FIXED[area] ?? area];
    });
  }

  /**
   * Grants exactly these item operations on the table (no indexes exist), on the items of these key areas only
   * (`dynamodb:LeadingKeys`): a function cannot read or write another area's items, nor another database's.
   */
  public grant(grantee: iam.IGrantable, areas: LockKeyArea[], ...actions: LockTableAction[]): iam.Grant {
    return iam.Grant.addToPrincipal({
      grantee,
      actions: actions.map((action) => `dynamodb:${action}`),
      resourceArns: [this.table.tableArn],
      conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': this.leadingKeys(areas) } },
    });
  }
}
