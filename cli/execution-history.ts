import type {
  DescribeExecutionCommandOutput,
  GetExecutionHistoryCommandOutput,
  SFNClient,
} from '@aws-sdk/client-sfn';
import { type InterruptHooks, releasingOnInterrupt } from './interrupt.js';
import { safeLine, type Write } from './output.js';

export type HistoryEvent = NonNullable<GetExecutionHistoryCommandOutput['events']>[number];

/** Events per history page: a poll with nothing new reads one short page. */
export const HISTORY_PAGE = 25;

/**
 * Reads an execution's history from where the previous poll stopped: newest events first, back to the last one
 * already seen. A poll costs what is new, not the whole history again (a long restore has thousands of events).
 */
export class HistoryFollower {
  private lastSeen = 0;

  constructor(
    private readonly sfn: Pick<SFNClient, 'send'>,
    private readonly executionArn: string,
  ) {}

  async newEvents(): Promise<HistoryEvent[]> {
    const { GetExecutionHistoryCommand } = await import('@aws-sdk/client-sfn');
    const fresh: HistoryEvent[] = [];
    let nextToken: string | undefined;
    pages: do {
      const page = await this.sfn.send(
        new GetExecutionHistoryCommand({
          executionArn: this.executionArn,
          reverseOrder: true,
          maxResults: HISTORY_PAGE,
          includeExecutionData: true,
          nextToken,
        }),
      );
      for (const event of page.events ?? []) {
        if ((event.id ?? 0) <= this.lastSeen) break pages;
        fresh.push(event);
      }
      nextToken = page.nextToken;
    } while (nextToken);
    fresh.reverse();
    this.lastSeen = fresh.at(-1)?.id ?? this.lastSeen;
    return fresh;
  }
}

/** How a command follows its execution: each new history event, and the progress line to print between polls. */
export interface Following {
  write: Write;
  pollMs?: number;
  /** Each history event, oldest first, as it appears. */
  onEvent(event: HistoryEvent): void;
  /** The progress line, printed when its `key` (the line itself by default) changed since the last one printed. */
  progress(): { line: string; key?: string };
  /** Tests only: the signals that stop the command, and how it ends. */
  interrupts?: InterruptHooks;
}

/**
 * Starts an execution and follows it to its end: one DescribeExecution and the new history events per poll
 * (HistoryFollower), the progress line when it changed. Returns the execution as it ended.
 */
export async function startAndFollow(
  sfn: Pick<SFNClient, 'send'>,
  stateMachineArn: string,
  input: unknown,
  following: Following,
): Promise<{ executionArn: string; execution: DescribeExecutionCommandOutput }> {
  const { DescribeExecutionCommand, StartExecutionCommand } = await import('@aws-sdk/client-sfn');
  const started = await sfn.send(
    new StartExecutionCommand({ stateMachineArn, input: JSON.stringify(input) }),
  );
  const executionArn = started.executionArn ?? '';
  following.write(safeLine(`Started ${executionArn}`));
  const history = new HistoryFollower(sfn, executionArn);
  let reported: string | undefined;
  // Ctrl-C stops the following, not the execution (unlike `local run`, whose process runs it): say so.
  return releasingOnInterrupt(
    async () =>
      `stopped following ${executionArn}; the execution goes on in Step Functions (stop it there if it must not)`,
    async () => {
      for (;;) {
        const execution = await sfn.send(new DescribeExecutionCommand({ executionArn }));
        for (const event of await history.newEvents()) following.onEvent(event);
        if (execution.status !== 'RUNNING') return { executionArn, execution };
        const { line, key = line } = following.progress();
        if (key !== reported) {
          following.write(safeLine(`  ${line}`));
          reported = key;
        }
        await new Promise((resolve) => setTimeout(resolve, following.pollMs ?? 5000));
      }
    },
    following.interrupts,
  );
}
