import {
  DescribeExecutionCommand,
  type ExecutionListItem,
  ListExecutionsCommand,
  type SFNClient,
} from '@aws-sdk/client-sfn';
import { describe, expect, it } from 'vitest';
import {
  type CheckResult,
  type DoctorDeps,
  doctorExitCode,
  executionsCheck,
  formatDoctor,
  timeoutCheck,
} from '../../cli/doctor.js';
import { parseDeploymentConfig } from '../../lambdas/shared/config/deployment-schema.js';

const NOW = new Date('2026-03-10T12:00:00Z');
const ARN = 'arn:aws:states:us-east-1:123456789012:stateMachine:audit-archiver';
const config = (defaults = {}) =>
  parseDeploymentConfig({
    s3: {},
    defaults,
    databases: [
      { name: 'app', credentials: { urlEnv: 'DB' }, tables: [{ name: 't', timestampColumn: 'c' }] },
    ],
  });
const run = (name: string, status: ExecutionListItem['status'], hoursAgo: number): ExecutionListItem => ({
  executionArn: `${ARN}:${name}`,
  stateMachineArn: ARN,
  name,
  status,
  startDate: new Date(NOW.getTime() - hoursAgo * 3_600_000),
});

/**
 * The last-executions check reads the deployed state machine's history: no local stand-in answers ListExecutions
 * for a real deployment's runs, so the SFN client is mocked here, and only here. Each execution's input is `{}` (a
 * scheduled run) unless `inputs` gives it one.
 */
function sfnReturning(
  executions: ExecutionListItem[],
  inputs: Record<string, unknown> = {},
): { client: SFNClient; requests: unknown[] } {
  const requests: unknown[] = [];
  const client = {
    send: async (command: unknown) => {
      requests.push(command);
      if (command instanceof DescribeExecutionCommand) {
        const name = command.input.executionArn?.slice(`${ARN}:`.length) ?? '';
        return { ...executions.find((e) => e.name === name), input: JSON.stringify(inputs[name] ?? {}) };
      }
      return { executions };
    },
  } as unknown as SFNClient;
  return { client, requests };
}

const awsDeps = (sfn: SFNClient) =>
  ({ config: config(), mode: 'aws', sfn, stateMachineArn: ARN, now: () => NOW }) as DoctorDeps;

describe('doctor: the last executions of the archive state machine (AWS mode)', () => {
  it('is ok after a recent success, even with a run in progress', async () => {
    // Prepare
    const { client, requests } = sfnReturning([run('now', 'RUNNING', 0.1), run('daily', 'SUCCEEDED', 20)]);

    // Act
    const result = await executionsCheck(awsDeps(client));

    // Assess
    expect(result).toMatchObject({ status: 'ok', detail: 'last success daily 20 h ago; one running' });
    expect(requests[0]).toBeInstanceOf(ListExecutionsCommand);
    expect((requests[0] as ListExecutionsCommand).input).toMatchObject({ stateMachineArn: ARN });
  });

  it('is critical when the latest finished run failed, whatever succeeded before', async () => {
    // Prepare
    const { client } = sfnReturning([run('ok', 'SUCCEEDED', 30), run('bad', 'FAILED', 2)]);

    // Act
    const result = await executionsCheck(awsDeps(client));

    // Assess
    expect(result).toMatchObject({
      status: 'critical',
      detail: expect.stringMatching(/^latest run bad FAILED/),
    });
  });

  it('warns when nothing succeeded for longer than the alarm threshold (26 h), or nothing ran at all', async () => {
    // Prepare
    const stale = sfnReturning([run('old', 'SUCCEEDED', 27)]).client;
    const none = sfnReturning([]).client;

    // Act
    const staleResult = await executionsCheck(awsDeps(stale));
    const noneResult = await executionsCheck(awsDeps(none));

    // Assess
    expect(staleResult).toMatchObject({
      status: 'warning',
      detail: 'no successful run for 27 h (more than 26 h)',
    });
    expect(noneResult).toMatchObject({ status: 'warning', detail: 'no execution yet' });
  });

  it('takes no dry run for a successful run: it succeeds having archived nothing, as the alarm does not count it', async () => {
    // Prepare: the schedule's last run 50 h ago, an operator's dry runs since.
    const { client } = sfnReturning(
      [
        run('plan-today', 'SUCCEEDED', 1),
        run('plan-yesterday', 'SUCCEEDED', 25),
        run('daily', 'SUCCEEDED', 50),
      ],
      { 'plan-today': { dryRun: true }, 'plan-yesterday': { database: 'app', dryRun: true } },
    );

    // Act
    const result = await executionsCheck(awsDeps(client));

    // Assess
    expect(result).toMatchObject({
      status: 'warning',
      detail: 'no successful run for 50 h (more than 26 h)',
    });
  });

  it('is skipped without a state machine ARN, and in local mode', async () => {
    // Act
    const withoutArn = await executionsCheck({
      ...awsDeps(sfnReturning([]).client),
      stateMachineArn: undefined,
    });
    const local = await executionsCheck({ ...awsDeps(sfnReturning([]).client), mode: 'local' });

    // Assess
    expect(withoutArn).toMatchObject({ status: 'skipped', detail: 'give --state-machine-arn' });
    expect(local.status).toBe('skipped');
  });
});

describe('doctor: timeouts, exit code and output', () => {
  it('accepts the default timeouts and warns about ones that block writers or outlast a step', () => {
    // Act
    const sane = timeoutCheck(config());
    const risky = timeoutCheck(config({ statementTimeoutSeconds: 880, lockTimeoutSeconds: 120 }));

    // Assess
    expect(sane).toMatchObject({ status: 'ok', detail: 'statement 600 s, lock 5 s' });
    expect(risky.status).toBe('warning');
    expect(risky.detail).toMatch(/statementTimeoutSeconds 880 leaves no margin/);
    expect(risky.detail).toMatch(/lockTimeoutSeconds 120 lets a delete block writers/);
  });

  it('exits 0 when all is well or only warns, 1 on anything critical or on warnings with --strict, and marks each line', () => {
    // Prepare
    const check = (status: CheckResult['status']): CheckResult => ({
      check: 'c',
      subject: 's',
      status,
      detail: 'd',
    });

    // Act / Assess
    expect(doctorExitCode([check('ok'), check('skipped')])).toBe(0);
    expect(doctorExitCode([check('ok'), check('warning')])).toBe(0);
    expect(doctorExitCode([check('ok'), check('warning')], true)).toBe(1);
    expect(doctorExitCode([check('warning'), check('critical')])).toBe(1);
    expect(formatDoctor([check('ok'), check('warning'), check('critical')]).split('\n')).toEqual([
      '✔ c  s: d',
      '⚠ c  s: d',
      '✖ c  s: d',
      '',
      '1 ok, 1 warnings, 1 critical',
    ]);
  });
});
