import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import type { ArchiverFunctions } from './archiver-functions.js';
import { AslStateMachine } from './asl-state-machine.js';

/** statemachines/ at the repository root: the ASL files local mode runs as well. */
export const STATE_MACHINES_DIR = fileURLToPath(new URL('../statemachines', import.meta.url));

export interface ArchiveStateMachinesProps {
  /** The step functions the definitions' `${...FunctionArn}` placeholders name. */
  readonly functions: ArchiverFunctions;
  /**
   * Execution log level of both state machines.
   * @default sfn.LogLevel.ERROR
   */
  readonly logLevel?: sfn.LogLevel;
  /**
   * Retention of the execution log groups.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * The run as two Standard state machines built from the ASL files: `archiveTable` (child) takes one table's lease
 * and loops export, upload, verify, delete until the table is done or its batch budget is spent, then releases;
 * `archive` (parent) plans, runs one child per table (lanes in parallel, tables in a lane in turn) and summarizes.
 * Each role may invoke exactly the functions its definition names.
 */
export class ArchiveStateMachines extends Construct {
  public readonly archiveTable: AslStateMachine;
  public readonly archive: AslStateMachine;

  constructor(scope: Construct, id: string, props: ArchiveStateMachinesProps) {
    super(scope, id);
    const { functions } = props;
    const common = { logLevel: props.logLevel, logRetention: props.logRetention };

    const childSteps = {
      LockFunctionArn: functions.lock,
      ExportFunctionArn: functions.export,
      UploadFunctionArn: functions.upload,
      VerifyFunctionArn: functions.verify,
      DeleteFunctionArn: functions.delete,
    };
    this.archiveTable = new AslStateMachine(this, 'ArchiveTable', {
      definitionFile: join(STATE_MACHINES_DIR, 'archive-table.asl.json'),
      substitutions: Object.fromEntries(
        Object.entries(childSteps).map(([name, step]) => [name, step.function.functionArn]),
      ),
      ...common,
    });
    for (const step of Object.values(childSteps)) this.archiveTable.grantInvoke(step.function);

    this.archive = new AslStateMachine(this, 'Archive', {
      definitionFile: join(STATE_MACHINES_DIR, 'archive.asl.json'),
      substitutions: {
        PlanFunctionArn: functions.plan.function.functionArn,
        SummaryFunctionArn: functions.summary.function.functionArn,
        ArchiveTableStateMachineArn: this.archiveTable.stateMachine.stateMachineArn,
      },
      ...common,
    });
    this.archive.grantInvoke(functions.plan.function);
    this.archive.grantInvoke(functions.summary.function);
    this.archive.grantStartExecutionSync(this.archiveTable.stateMachine);
  }
}
