import * as iam from 'aws-cdk-lib/aws-iam';
import type { ArchiverConfig } from '../lambdas/shared/config/schema.js';

/**
 * The Secrets Manager secrets the config names for its databases. Grants cover exactly those secrets: each ARN
 * as written, and the same ARN followed by the 6-character suffix Secrets Manager appends, so a partial ARN (no
 * suffix) works as well as a complete one. `?` matches one character, never a path.
 */
export class DatabaseSecrets {
  public readonly secretArns: readonly string[];

  constructor(config: ArchiverConfig) {
    const arns = config.databases.flatMap((db) =>
      'secretArn' in db.credentials ? [db.credentials.secretArn] : [],
    );
    this.secretArns = [...new Set(arns)];
  }

  /** Allows `secretsmanager:GetSecretValue` on the configured secrets; nothing when the config names none. */
  public grantRead(grantee: iam.IGrantable): void {
    if (this.secretArns.length === 0) return;
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['secretsmanager:GetSecretValue'],
      resourceArns: this.secretArns.flatMap((arn) => [arn, `${arn}-??????`]),
    });
  }
}
