import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Duration, Validations } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { BundledConfig, copyIntoBundle } from './bundled-config.js';
import type { DatabaseCaBundle } from './database-ca-bundle.js';
import { FUNCTION_BUNDLE } from './function-bundle.js';
import { type ArchiverStep, FUNCTION_MEMORY_MB } from './function-memory.js';

/** Repository root: lambdas/<step>/handler.ts and package-lock.json live below it. */
const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Network placement for functions that connect to the databases. */
export interface DatabaseNetworkProps {
  /**
   * VPC from which the databases are reachable. The functions also call S3, DynamoDB and Secrets Manager, so the
   * subnets need a NAT gateway or VPC endpoints for those services.
   * @default - the functions run outside any VPC and reach the databases over the internet
   */
  readonly vpc?: ec2.IVpc;
  /**
   * Subnets in `vpc` for the functions' network interfaces.
   * @default - the VPC's private subnets
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /**
   * Security groups of the functions; the databases' groups must admit them.
   * @default - a new security group per function, allowing all outbound traffic
   */
  readonly securityGroups?: ec2.ISecurityGroup[];
}

export interface ArchiverFunctionProps extends DatabaseNetworkProps {
  /** The step: its code is `lambdas/<step>/handler.ts`, exporting `handler`. */
  readonly step: ArchiverStep;
  /** The config the bundle ships as `archiver.config.json`. */
  readonly config: BundledConfig;
  /** Variables besides `ARCHIVER_CONFIG_PATH` and `NODE_OPTIONS`. */
  readonly environment: Record<string, string>;
  /**
   * The function's timeout (see LONG_STEP and SHORT_STEP); each Task of the state machines allows a little more. Its
   * memory is the step's in FUNCTION_MEMORY_MB.
   */
  readonly timeout: Duration;
  /**
   * How long the function's log group keeps events.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * The CA certificates database connections are checked against; set for the steps that open connections.
   * @default - none shipped, NODE_EXTRA_CA_CERTS unset
   */
  readonly databaseCaBundle?: DatabaseCaBundle;
  /**
   * Reserved concurrency: the most instances that can run at once, each holding one database connection.
   * @default - the account's unreserved concurrency
   */
  readonly reservedConcurrentExecutions?: number;
}

/** What Lambda does with the function's role to attach it to a VPC (AWSLambdaVPCAccessExecutionRole's EC2 actions). */
export const NETWORK_INTERFACE_ACTIONS = [
  'ec2:AssignPrivateIpAddresses',
  'ec2:CreateNetworkInterface',
  'ec2:DeleteNetworkInterface',
  'ec2:DescribeNetworkInterfaces',
  'ec2:DescribeSubnets',
  'ec2:UnassignPrivateIpAddresses',
] as const;

/**
 * One archiver step as a Lambda function: Node.js 22 on arm64, an ESM bundle (minified, source-mapped, class names
 * kept because the state machines match on error names) that carries the validated config (and the database CA
 * certificates, when given), an explicit log group with retention, X-Ray active tracing, and a role that starts
 * with nothing but writing to that log group and sending traces. Everything else is granted per step by the
 * construct that owns the resource (ArchiverFunctions, RestoreWorkflow, ArchiveMonitoring), with this construct as
 * the grantee.
 */
export class ArchiverFunction extends Construct implements iam.IGrantable {
  public readonly function: nodejs.NodejsFunction;
  public readonly logGroup: logs.LogGroup;
  public readonly role: iam.Role;
  public readonly grantPrincipal: iam.IPrincipal;

  constructor(scope: Construct, id: string, props: ArchiverFunctionProps) {
    super(scope, id);

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
    });
    // No AWSLambdaBasicExecutionRole: that managed policy may create and write any log group in the account.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `audit-archiver ${props.step} step`,
    });
    this.logGroup.grantWrite(this.role);
    if (props.vpc) {
      // Not AWSLambdaVPCAccessExecutionRole: beside these actions it grants writing any log group in the account.
      this.role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: [...NETWORK_INTERFACE_ACTIONS],
          resources: ['*'],
        }),
      );
    }
    this.grantPrincipal = this.role;

    this.function = new nodejs.NodejsFunction(this, 'Function', {
      description: `audit-archiver: ${props.step} step`,
      entry: join(PROJECT_ROOT, 'lambdas', props.step, 'handler.ts'),
      handler: 'handler',
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: join(PROJECT_ROOT, 'package-lock.json'),
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: FUNCTION_MEMORY_MB[props.step],
      timeout: props.timeout,
      role: this.role,
      logGroup: this.logGroup,
      vpc: props.vpc,
      vpcSubnets: props.vpc ? props.vpcSubnets : undefined,
      securityGroups: props.vpc ? props.securityGroups : undefined,
      tracing: lambda.Tracing.ACTIVE,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      environment: {
        ARCHIVER_CONFIG_PATH: BundledConfig.RUNTIME_PATH,
        NODE_OPTIONS: '--enable-source-maps',
        ...props.databaseCaBundle?.environment,
        ...props.environment,
      },
      bundling: {
        format: nodejs.OutputFormat.ESM,
        target: FUNCTION_BUNDLE.target,
        mainFields: [...FUNCTION_BUNDLE.mainFields],
        banner: FUNCTION_BUNDLE.banner,
        minify: FUNCTION_BUNDLE.minify,
        keepNames: FUNCTION_BUNDLE.keepNames,
        sourceMap: true,
        sourcesContent: false,
        externalModules: [...FUNCTION_BUNDLE.external],
        forceDockerBundling: false,
        commandHooks: copyIntoBundle([props.config, ...(props.databaseCaBundle?.files ?? [])]),
      },
    });
    Validations.of(this.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Added by active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords support no resource scope.' +
        (props.vpc
          ? ' In a VPC also the EC2 network-interface actions Lambda needs to attach the function (those of ' +
            'AWSLambdaVPCAccessExecutionRole, without its logs rights), which AWS documents on Resource "*".'
          : ''),
    });
    Validations.of(this.function).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'The steps target Node.js 22 (LTS until April 2027), the runtime the code, its esbuild target and the local ' +
        'mode are tested on; moving to a newer runtime is a deliberate, tested change.',
    });
  }
}
