import type { GetExecutionHistoryCommandOutput, SFNClient } from '@aws-sdk/client-sfn';

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
