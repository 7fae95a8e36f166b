import type { IncomingHttpHeaders } from 'node:http';

export function callerOf(headers: IncomingHttpHeaders): string;
