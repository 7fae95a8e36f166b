/**
 * The deployment schema: the runtime config (schema.ts) with its `aws:` section validated, for the CDK app, the
 * CLI and local mode. The functions never import it, so the schema of the schedule, lifecycle, network and
 * Athena settings stays out of their bundles.
 */
import { z } from 'zod';
import { checkConfig, loadWith, parseWith } from './config.js';
import { ArchiverConfigObject, isIanaTimeZone } from './schema.js';
import { lifecycleRank, TRANSITION_STORAGE_CLASSES } from './storage-classes.js';

/** The six fields of an EventBridge cron expression: minutes hours day-of-month month day-of-week year. */
const CRON = /^cron\((\S+(?:\s+\S+)*)\)$/;
const RATE = /^rate\(([1-9]\d*) (minute|minutes|hour|hours|day|days)\)$/;

/** An EventBridge Scheduler recurring expression: `cron(...)` with six fields or `rate(N unit)`. */
const scheduleExpression = z.string().superRefine((expression, ctx) => {
  const cron = CRON.exec(expression);
  if (cron) {
    const fields = (cron[1] ?? '').split(/\s+/);
    if (fields.length !== 6) {
      ctx.addIssue({
        code: 'custom',
        message: `cron(...) must have 6 fields (minutes hours day-of-month month day-of-week year), found ${fields.length}`,
      });
    } else if ((fields[2] === '?') === (fields[4] === '?')) {
      ctx.addIssue({
        code: 'custom',
        message: 'cron(...) needs "?" in exactly one of day-of-month (3rd field) and day-of-week (5th field)',
      });
    }
    return;
  }
  const rate = RATE.exec(expression);
  if (rate) {
    const plural = (rate[2] ?? '').endsWith('s');
    if ((rate[1] === '1') === plural) {
      ctx.addIssue({
        code: 'custom',
        message: 'rate(...) takes a singular unit for 1 and a plural unit otherwise',
      });
    }
    return;
  }
  ctx.addIssue({
    code: 'custom',
    message:
      'must be "cron(minutes hours day-of-month month day-of-week year)" or "rate(N minutes|hours|days)"',
  });
});

export const AwsScheduleConfigSchema = z
  .object({
    /** When the scheduled run starts: `cron(...)` (six fields) or `rate(N unit)`, read in `timeZone`. */
    expression: scheduleExpression.default('cron(0 3 * * ? *)'),
    /** IANA time zone the cron expression is read in (daylight saving time included), e.g. `Europe/Paris`. */
    timeZone: z
      .string()
      .refine(isIanaTimeZone, 'must be an IANA time zone name such as "UTC" or "Europe/Paris"')
      .default('UTC'),
    /** Whether the schedule starts runs; when false, runs are only started by hand. */
    enabled: z.boolean().default(true),
  })
  .strict();

/** The retention periods CloudWatch Logs accepts, in days. */
const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/**
 * Days an archive stays in its written class at least before a transition, and between two transitions. S3 itself
 * requires 30 days before (and in) STANDARD_IA; the archiver also needs archives readable while a batch that made
 * them can still be re-verified or settled by a later run.
 */
const MIN_TRANSITION_DAYS = 30;

export const AwsStorageConfigSchema = z
  .object({
    /** Lifecycle transitions of archives (not staging or quarantine objects), in S3's order, days increasing. */
    transitions: z
      .array(
        z
          .object({
            storageClass: z.enum(TRANSITION_STORAGE_CLASSES),
            afterDays: z.number().int().min(MIN_TRANSITION_DAYS).max(36_500),
          })
          .strict(),
      )
      .default([]),
    /** Days after which archives expire (are deleted). Without it archives are kept for ever. */
    expireAfterDays: z.number().int().min(1).max(36_500).optional(),
    /** S3 Object Lock: a default retention on every object version written, which nobody (COMPLIANCE) can shorten. */
    objectLock: z
      .object({
        mode: z.enum(['GOVERNANCE', 'COMPLIANCE']),
        retentionDays: z.number().int().min(1).max(36_500),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((storage, ctx) => {
    storage.transitions.forEach((transition, i) => {
      const previous = storage.transitions[i - 1];
      if (!previous) return;
      if (lifecycleRank(transition.storageClass) <= lifecycleRank(previous.storageClass)) {
        ctx.addIssue({
          code: 'custom',
          path: ['transitions', i, 'storageClass'],
          message: `${transition.storageClass} cannot follow ${previous.storageClass}: S3 moves objects only in the order ${TRANSITION_STORAGE_CLASSES.join(', ')}`,
        });
      }
      if (transition.afterDays < previous.afterDays + MIN_TRANSITION_DAYS) {
        ctx.addIssue({
          code: 'custom',
          path: ['transitions', i, 'afterDays'],
          message: `must be at least ${MIN_TRANSITION_DAYS} days after the previous transition (${previous.afterDays})`,
        });
      }
    });
    const last = storage.transitions.at(-1);
    if (storage.expireAfterDays !== undefined && last && storage.expireAfterDays <= last.afterDays) {
      ctx.addIssue({
        code: 'custom',
        path: ['expireAfterDays'],
        message: `must be after the last transition (${last.afterDays} days)`,
      });
    }
    const lock = storage.objectLock;
    if (storage.expireAfterDays !== undefined && lock && storage.expireAfterDays < lock.retentionDays) {
      ctx.addIssue({
        code: 'custom',
        path: ['expireAfterDays'],
        message: `must not be shorter than objectLock.retentionDays (${lock.retentionDays}): locked versions cannot be removed earlier`,
      });
    }
  });

const awsId = (prefix: string) =>
  z
    .string()
    .regex(new RegExp(`^${prefix}-[0-9a-f]{8,17}$`), `must be an id such as "${prefix}-0123456789abcdef0"`);

/** Where the functions that open database connections run: existing subnets and security groups of one VPC. */
export const AwsVpcConfigSchema = z
  .object({
    vpcId: awsId('vpc'),
    /** Private subnets (with a route to S3, DynamoDB and Secrets Manager: NAT or VPC endpoints). */
    subnetIds: z.array(awsId('subnet')).min(1, 'must list at least one subnet'),
    /** Groups the databases' security groups admit on their port. */
    securityGroupIds: z.array(awsId('sg')).min(1, 'must list at least one security group'),
  })
  .strict();

/** Glue column names: Athena lower-cases them; the SerDe maps each back to its JSON key. */
const athenaColumnName = z.string().min(1).max(255);

export const AwsAthenaConfigSchema = z
  .object({
    /** Partition projection range of the `year` partition; queries see no archive outside it. */
    firstYear: z.number().int().min(1).max(9999).default(2000),
    lastYear: z.number().int().min(1).max(9999).default(2100),
    /** Query results (in the stack's results bucket) expire after this many days. */
    resultsExpireAfterDays: z.number().int().min(1).max(3650).default(30),
    /**
     * The IAM roles and users that may assume the query role, which reads every archived row. Without it the role
     * trusts the account: any principal whose IAM allows `sts:AssumeRole` on it (or on `*`).
     */
    queryPrincipals: z
      .array(
        z
          .string()
          .regex(
            /^arn:aws[a-z-]*:iam::\d{12}:(role|user)\/[\w+=,.@/-]+$/,
            'must be the ARN of an IAM role or user',
          ),
      )
      .min(1)
      .optional(),
    /** Per archived table: the columns its Glue table declares (every value is a string: PostgreSQL text form). */
    tables: z
      .array(
        z
          .object({
            database: z.string().min(1),
            /** "schema.name", as in execution input. */
            table: z.string().min(1),
            columns: z.array(athenaColumnName).min(1).max(1000),
          })
          .strict(),
      )
      .default([]),
  })
  .strict()
  .refine((athena) => athena.firstYear <= athena.lastYear, {
    path: ['lastYear'],
    message: 'must not be before firstYear',
  });

export const AwsConfigSchema = z
  .object({
    /** The EventBridge Scheduler schedule that starts the parent state machine with input `{}`. */
    schedule: AwsScheduleConfigSchema.default(() => AwsScheduleConfigSchema.parse({})),
    /**
     * Execution log level of both state machines (CloudWatch Logs); ALL logs every per-batch transition. FATAL and
     * OFF are not offered: a failed table's error and cause would then be in no log (cdk-nag AwsSolutions-SF1).
     */
    stateMachineLogLevel: z.enum(['ERROR', 'ALL']).default('ERROR'),
    /** Who hears about alarms: the alarm topic's subscriptions. */
    notifications: z
      .object({
        /** Addresses subscribed (by email, each confirms once) to the alarm topic. */
        emails: z.array(z.email('must be an email address')).default([]),
        /** AWS Chatbot Slack channel (workspace authorized in the Chatbot console once). */
        slack: z
          .object({
            workspaceId: z
              .string()
              .regex(/^[0-9A-Z]{1,255}$/, 'must be a Slack workspace id such as "T0123ABCD"'),
            channelId: z
              .string()
              .regex(/^[A-Za-z0-9]{9,11}$/, 'must be a Slack channel id such as "C0123ABCDE"'),
          })
          .strict()
          .optional(),
        /** AWS Chatbot Microsoft Teams channel (team authorized in the Chatbot console once). */
        teams: z
          .object({
            teamId: z.guid('must be the team id (a GUID)'),
            tenantId: z.guid('must be the tenant id (a GUID)'),
            /** URL-encoded, as in the channel's link: `19%3A...%40thread.tacv2`. */
            channelId: z
              .string()
              .regex(
                /^[A-Za-z0-9\-_=+/.,]*%3[aA][A-Za-z0-9\-_=+/.,]*%40[A-Za-z0-9\-_=+/.,]*$/,
                'must be the URL-encoded channel id of the channel link, such as "19%3Aabc123%40thread.tacv2"',
              ),
          })
          .strict()
          .optional(),
      })
      .strict()
      .default(() => ({ emails: [] })),
    /** Thresholds of the alarms that are not plain "any failure" alarms. */
    alarms: z
      .object({
        /**
         * Hours without a successful run after which an alarm fires. At most 168: CloudWatch evaluates an alarm
         * with one-hour periods over seven days at most.
         */
        noSuccessfulRunHours: z.number().int().min(1).max(168).default(26),
        /** Where the runbook is (docs/runbook.md published): each alarm's description links its entry there. */
        runbookUrl: z.url({ protocol: /^https$/, error: 'must be an https URL' }).optional(),
      })
      .strict()
      .default(() => ({ noSuccessfulRunHours: 26 })),
    /** Retention of every log group (functions and state machines), in days CloudWatch Logs accepts. Default 90. */
    logRetentionDays: z
      .number()
      .refine(
        (days) => (LOG_RETENTION_DAYS as readonly number[]).includes(days),
        `must be one of ${LOG_RETENTION_DAYS.join(', ')}`,
      )
      .optional(),
    /** Network of the functions that connect to databases; without it they run outside any VPC. */
    vpc: AwsVpcConfigSchema.optional(),
    /**
     * PEM file of the CA certificates that sign the databases' server certificates (for RDS: the global bundle
     * from AWS), relative to this config file. Shipped with the database functions (NODE_EXTRA_CA_CERTS). Without
     * it they trust the Amazon CA file of the Lambda runtime, which includes the RDS CAs.
     */
    databaseCaBundlePath: z.string().min(1).optional(),
    /**
     * Reserved concurrency of each function that connects to databases: a hard cap on their connections, and
     * capacity no other function in the account can take. At least run.maxConcurrency.
     */
    databaseFunctionConcurrency: z.number().int().min(1).max(1000).optional(),
    /** Lifecycle (transitions, expiry) and Object Lock of the archive bucket. */
    storage: AwsStorageConfigSchema.optional(),
    /** The Athena tables over the archives (Glue database, one table per archived table, workgroup). */
    athena: AwsAthenaConfigSchema.optional(),
  })
  .strict();

export const DeploymentConfigSchema = ArchiverConfigObject.extend({
  /** Deployment settings (schedule, logging, notifications, alarms); read by the CDK app only. */
  aws: AwsConfigSchema.default(() => AwsConfigSchema.parse({})),
}).superRefine(checkConfig);

export type AwsConfig = z.infer<typeof AwsConfigSchema>;
export type DeploymentConfig = z.infer<typeof DeploymentConfigSchema>;

export const parseDeploymentConfig = (raw: unknown, source?: string): DeploymentConfig =>
  parseWith(DeploymentConfigSchema, raw, source);

/** Reads a config file and validates every section, `aws:` included. */
export const loadDeploymentConfigFile = (path: string): DeploymentConfig =>
  loadWith(DeploymentConfigSchema, path);
