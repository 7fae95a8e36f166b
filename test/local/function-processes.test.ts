import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Context } from 'aws-lambda';
import { afterAll, describe, expect, it } from 'vitest';
import { FunctionProcesses } from '../../local/function-processes.js';

const context: Context = {
  callbackWaitsForEmptyEventLoop: true,
  functionName: 'audit-archiver-lock',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:audit-archiver-lock',
  memoryLimitInMB: '256',
  awsRequestId: 'test',
  logGroupName: '/aws/lambda/audit-archiver-lock',
  logStreamName: 'local',
  getRemainingTimeInMillis: () => 60_000,
  done: () => undefined,
  fail: () => undefined,
  succeed: () => undefined,
};

/** The pid of the newest child of this process running the lock function's bundle: the one this test just started. */
const lockProcessPid = (): number =>
  Number(
    execFileSync('pgrep', ['-n', '-P', String(process.pid), '-f', '/lock\\.mjs'], { encoding: 'utf8' }).split(
      '\n',
    )[0],
  );

describe('function processes', () => {
  const functions = new FunctionProcesses({ ...process.env, POWERTOOLS_LOG_LEVEL: 'ERROR' });
  afterAll(() => functions.close());

  it('run a function with the heap Lambda gives its memory size', { timeout: 60_000 }, async () => {
    // Prepare: a process of the lock function (256 MB in the stack).
    await expect(functions.invoke('lock', {}, context)).rejects.toMatchObject({ name: 'InvalidInputError' });

    // Act
    const commandLine = readFileSync(`/proc/${lockProcessPid()}/cmdline`, 'utf8').split('\0');

    // Assess: Lambda's Node.js bootstrap at 256 MB: 25 MB of new space (two semi-spaces of 12 MB), 231 MB of old.
    expect(commandLine).toEqual(
      expect.arrayContaining(['--max-semi-space-size=12', '--max-old-space-size=231']),
    );
  });

  it('an invocation handed to a process that died since its last one fails, rather than crash the process that runs them', {
    timeout: 60_000,
  }, async () => {
    // Prepare: a warm process of the lock function (an invalid payload is answered without any dependency), killed
    // while idle; this process waits (blocked, so it has not heard of the death yet) until the child surely is gone.
    await expect(functions.invoke('lock', {}, context)).rejects.toMatchObject({ name: 'InvalidInputError' });
    process.kill(lockProcessPid(), 'SIGKILL');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);

    // Act
    const outcome = await Promise.race([
      functions.invoke('lock', {}, context).then(
        () => 'resolved',
        (error: Error) => error.message,
      ),
      new Promise((resolve) => setTimeout(() => resolve('still waiting'), 5_000)),
    ]);

    // Assess: the invocation fails (the pipe or the process gone, whichever this process hears of first), and the next
    // one gets a new process, as Lambda replaces a crashed container.
    expect(outcome).toMatch(/EPIPE|channel closed|process exited/i);
    await expect(functions.invoke('lock', {}, context)).rejects.toMatchObject({ name: 'InvalidInputError' });
  });
});
