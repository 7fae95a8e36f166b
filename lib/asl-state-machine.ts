import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { ArnFormat, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { acknowledgeWildcardResources } from './nag.js';

/** `${Name}` placeholders, as CloudFormation's DefinitionSubstitutions replaces them. */
const PLACEHOLDER = /\$\{([A-Za-z0-9_]+)\}/g;

/** The placeholder names an ASL text uses, sorted and without repeats. */
export function aslPlaceholders(text: string): string[] {
  return [...new Set([...text.matchAll(PLACEHOLDER)].map((match) => match[1] ?? ''))].sort();
}

export interface AslStateMachineProps {
  /** Amazon States Language file (JSONPath) with `${Name}` placeholders, the same file local mode runs. */
  readonly definitionFile: string;
  /** A value for every placeholder in the file, and nothing else. */
  readonly substitutions: Record<string, string>;
  /**
   * Events written to CloudWatch Logs.
   * @default sfn.LogLevel.ERROR
   */
  readonly logLevel?: sfn.LogLevel;
  /**
   * Whether log events carry state input and output, which include batch key ranges taken from the audit rows.
   * @default false
   */
  readonly includeExecutionData?: boolean;
  /**
   * How long the execution log group keeps events.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * A Standard state machine whose definition is an ASL file, deployed as that file's JSON in DefinitionString with
 * its `${...}` placeholders filled in by CloudFormation (DefinitionSubstitutions). Placeholders and substitutions
 * must match exactly, or synthesis fails. Logs go to a `/aws/vendedlogs/` group; X-Ray tracing is on.
 *
 * The definition does not grant its role anything: the owner grants each integration the file uses.
 */
export class AslStateMachine extends Construct {
  public readonly stateMachine: sfn.StateMachine;
  public readonly logGroup: logs.LogGroup;
  /** The definition as deployed, before substitution: the file's JSON, without whitespace. */
  public readonly definition: string;

  constructor(scope: Construct, id: string, props: AslStateMachineProps) {
    super(scope, id);
    const file = basename(props.definitionFile);
    let text: string;
    try {
      text = JSON.stringify(JSON.parse(readFileSync(props.definitionFile, 'utf8')));
    } catch (error) {
      throw new Error(`${file}: cannot read the state machine definition: ${(error as Error).message}`);
    }
    const used = aslPlaceholders(text);
    const given = Object.keys(props.substitutions).sort();
    const missing = used.filter((name) => !given.includes(name));
    const unused = given.filter((name) => !used.includes(name));
    if (missing.length > 0 || unused.length > 0) {
      throw new Error(
        `${file}: placeholders and substitutions differ (no value for: ${missing.join(', ') || '-'}; ` +
          `not in the file: ${unused.join(', ') || '-'})`,
      );
    }
    this.definition = text;

    const level = props.logLevel ?? sfn.LogLevel.ERROR;
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `/aws/vendedlogs/states/${Stack.of(this).stackName}-${id}`,
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
    });
    this.stateMachine = new sfn.StateMachine(this, 'Resource', {
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromString(text),
      definitionSubstitutions: props.substitutions,
      logs: { destination: this.logGroup, level, includeExecutionData: props.includeExecutionData ?? false },
      tracingEnabled: true,
    });

    Validations.of(this.stateMachine.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Added by the StateMachine construct for log delivery (logs:*LogDelivery, PutResourcePolicy, Describe*) ' +
        'and X-Ray (PutTraceSegments, PutTelemetryRecords, GetSampling*); these actions support no resource scope.',
    });
    if (level !== sfn.LogLevel.ALL) {
      Validations.of(this.stateMachine).acknowledge({
        id: 'AwsSolutions-SF1',
        reason:
          'Failed states, with their error and cause, are logged at ERROR; the execution history keeps every event ' +
          'for 90 days. ALL would log each of the many per-batch transitions at a cost, for no added safety.',
      });
    }
  }

  public get role(): iam.IRole {
    return this.stateMachine.role;
  }

  /** Lets the definition's `lambda:invoke` tasks call `fn` (the function and its versions or aliases). */
  public grantInvoke(fn: lambda.IFunction): void {
    fn.grantInvoke(this.stateMachine);
    acknowledgeWildcardResources(
      this.stateMachine,
      [`${fn.functionArn}:*`],
      'Invoke on the versions and aliases (":*") of one named function, as grantInvoke scopes it.',
    );
  }

  /**
   * Lets the definition's `states:startExecution.sync:2` task run `child`: start it, and describe or stop its
   * executions; the .sync integration also manages its own EventBridge rule in the account.
   */
  public grantStartExecutionSync(child: sfn.StateMachine): void {
    const stack = Stack.of(this);
    child.grantStartExecution(this.stateMachine);
    const executions = stack.formatArn({
      service: 'states',
      resource: 'execution',
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      resourceName: `${child.stateMachineName}:*`,
    });
    this.stateMachine.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['states:DescribeExecution', 'states:StopExecution'],
        resources: [executions],
      }),
    );
    acknowledgeWildcardResources(
      this.stateMachine,
      [executions],
      'Describe/stop executions of one named child state machine; execution names are chosen at run time.',
    );
    this.stateMachine.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'],
        resources: [
          stack.formatArn({
            service: 'events',
            resource: 'rule',
            resourceName: 'StepFunctionsGetEventsForStepFunctionsExecutionRule',
          }),
        ],
      }),
    );
  }
}
