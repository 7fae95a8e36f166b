/**
 * Which function sent a request to a local server: local mode's function processes set the SDK's user-agent app id
 * (AWS_SDK_UA_APP_ID) to the function's name, which the SDK sends as `app/<id>` (and Powertools, tracing the client,
 * appends its own `-PT-…` marker to that token). Empty for any other client.
 */
export function callerOf(headers) {
  const agents = `${headers['x-amz-user-agent'] ?? ''} ${headers['user-agent'] ?? ''}`;
  return /(?:^|\s)app\/(\S+?)(?:-PT-\S*)?(?:\s|$)/.exec(agents)?.[1] ?? '';
}
