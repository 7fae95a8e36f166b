import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFromStdin } from '../../../../lambdas/shared/database/copy-from.js';
import { createTestDatabase, type TestDatabase } from '../../../support/fixtures.js';

type Chunk = { chunk: Buffer | string };
/** The pg client's socket, whose system-call-level writes (_write, _writev) the test records. */
type Socket = {
  _write(chunk: Buffer, encoding: string, callback: () => void): void;
  _writev(chunks: Chunk[], callback: () => void): void;
};
const socketOf = (db: TestDatabase) =>
  (db.client as unknown as { connection: { stream: Socket } }).connection.stream;

/** Each recorded write as the protocol messages it holds; throws when a write ends inside a message. */
function messagesOf(write: Buffer): { type: number; body: Buffer }[] {
  const messages: { type: number; body: Buffer }[] = [];
  for (let at = 0; at < write.length; ) {
    const length = write.readUInt32BE(at + 1);
    if (at + 1 + length > write.length) throw new Error(`a write ends inside a message of type ${write[at]}`);
    messages.push({ type: write[at] as number, body: write.subarray(at + 5, at + 1 + length) });
    at += 1 + length;
  }
  return messages;
}

describe('copyFromStdin: COPY FROM STDIN with one socket write per piece', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.client.query('CREATE TABLE copied (id int PRIMARY KEY, note text)');
  });
  afterAll(() => db.drop());

  it('sends each piece and its CopyData header in one write, and the rows arrive', async () => {
    // Prepare: three pieces, the middle one larger than a socket buffer; every write to the socket recorded.
    const pieces = [
      Buffer.from('1\tone\n2\ttwo\n'),
      Buffer.from(Array.from({ length: 20_000 }, (_, i) => `${i + 3}\t${'x'.repeat(40)}\n`).join('')),
      Buffer.from('20003\tlast\n'),
    ];
    const socket = socketOf(db);
    const { _write: write, _writev: writev } = socket;
    const writes: Buffer[] = [];
    const bytes = (c: Buffer | string) => (typeof c === 'string' ? Buffer.from(c) : Buffer.from(c));
    socket._write = function (chunk, encoding, callback) {
      writes.push(bytes(chunk));
      write.call(this, chunk, encoding, callback);
    };
    socket._writev = function (chunks, callback) {
      writes.push(Buffer.concat(chunks.map((c) => bytes(c.chunk))));
      writev.call(this, chunks, callback);
    };

    // Act
    const sink = db.client.query(copyFromStdin('COPY copied (id, note) FROM STDIN'));
    try {
      await pipeline(Readable.from(pieces), sink);
    } finally {
      socket._write = write;
      socket._writev = writev;
    }

    // Assess: no write ends inside a message, and the CopyData messages carry exactly the pieces.
    const copyData = writes.flatMap(messagesOf).filter((m) => m.type === 0x64);
    expect(copyData.map((m) => m.body.toString())).toEqual(pieces.map((p) => p.toString()));
    expect(sink.rowCount).toBe(20_003);
    const { rows } = await db.client.query(
      'SELECT count(*)::int AS n, max(note) FILTER (WHERE id = 20003) AS last FROM copied',
    );
    expect(rows[0]).toEqual({ n: 20_003, last: 'last' });
  });

  it('fails the COPY, and leaves the connection usable, when PostgreSQL refuses a row', async () => {
    // Act
    const sink = db.client.query(copyFromStdin('COPY copied (id, note) FROM STDIN'));
    const copying = pipeline(Readable.from([Buffer.from('1\tduplicate\n')]), sink);

    // Assess
    await expect(copying).rejects.toMatchObject({ code: '23505' });
    const { rows } = await db.client.query('SELECT count(*)::int AS n FROM copied');
    expect(rows[0]).toEqual({ n: 20_003 });
  });
});
