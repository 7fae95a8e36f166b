import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { startAndFollow } from '../../cli/execution-history.js';

const EXECUTION = 'arn:aws:states:us-east-1:111122223333:execution:audit-archiver-archive:run-1';

describe('following a deployed execution', () => {
  it('Ctrl-C stops the following, says the execution goes on in Step Functions, and exits 130', async () => {
    // Prepare: an execution that keeps running, and Ctrl-C once it has been polled
    const signals = new EventEmitter();
    const lines: string[] = [];
    const said: string[] = [];
    let ended: (code: number) => void = () => undefined;
    const exitCode = new Promise<number>((resolve) => {
      ended = resolve;
    });
    const sent: string[] = [];
    const sfn = {
      send: async (command: { constructor: { name: string } }) => {
        sent.push(command.constructor.name);
        if (command.constructor.name === 'StartExecutionCommand') return { executionArn: EXECUTION };
        if (command.constructor.name === 'DescribeExecutionCommand') {
          // Ctrl-C at the first poll; the test's fake execution ends after a few, so no poll outlives the test.
          if (sent.filter((name) => name === command.constructor.name).length === 1) signals.emit('SIGINT');
          return { status: sent.length < 10 ? 'RUNNING' : 'SUCCEEDED' };
        }
        return { events: [] };
      },
    };

    // Act
    const following = startAndFollow(
      sfn as never,
      'arn:aws:states:::stateMachine:x',
      {},
      {
        write: (line) => lines.push(line),
        pollMs: 10,
        onEvent: () => undefined,
        progress: () => ({ line: 'planning' }),
        interrupts: { signals, exit: ended, write: (text) => said.push(text) },
      },
    );
    const code = await Promise.race([
      exitCode,
      new Promise((resolve) => setTimeout(() => resolve('still following'), 2000)),
    ]);

    // Assess: nothing stopped the execution; the operator is told so
    expect(code).toBe(130);
    expect(said).toEqual([
      `Stopped by SIGINT: stopped following ${EXECUTION}; the execution goes on in Step Functions (stop it there if it must not)`,
    ]);
    expect(sent).not.toContain('StopExecutionCommand');
    expect(lines[0]).toBe(`Started ${EXECUTION}`);
    await following;
  });
});
