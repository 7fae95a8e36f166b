/**
 * How long an AWS request may wait: to connect, and for its answer to begin (requestTimeout, thrown). A request whose
 * endpoint or network path stops answering fails as a TimeoutError, which the SDK retries and the steps report as
 * StorageUnavailableError or LockStoreUnavailableError for the state machine's Retry; without them it held the function
 * until Lambda's own timeout, and a step that waits for its requests under way after one failed (forEachObject) held
 * that failure as long. A body that is streaming is its reader's: restore pauses it while its COPY waits, for longer
 * than any bound here would allow. The CLI's clients take the same bounds: an operator command fails rather than hangs.
 */
export const AWS_REQUEST_TIMEOUTS = { connectionTimeout: 5_000, requestTimeout: 60_000 } as const;

/** A client's `requestHandler` with these bounds. */
export function boundedRequests(
  timeouts: { connectionTimeout: number; requestTimeout: number } = AWS_REQUEST_TIMEOUTS,
) {
  return { ...timeouts, throwOnRequestTimeout: true };
}
