import { TableNotUsableError } from '../errors/step-errors.js';
import type { TableShape } from './table-shape.js';

/**
 * SQLSTATEs PostgreSQL raises when a value read in the archiver's UTF-8 client encoding cannot be written in it: 22021
 * a byte sequence not valid in UTF-8 (stored as given in a SQL_ASCII database), 22P05 a character the server encoding
 * has that UTF-8 has no equivalent for (a byte a WIN125x code page leaves undefined, say).
 */
const NOT_UTF8: Record<string, string> = {
  '22021':
    'holds bytes that are not valid UTF-8 (SQLSTATE 22021; a SQL_ASCII database stores any bytes as given)',
  '22P05': 'holds a character that has no equivalent in UTF-8 (SQLSTATE 22P05)',
};

/** What the input of a readBackColumns type refuses, by the SQLSTATE reading it back raises. */
const READ_BACK_REFUSALS: Record<string, { what: string; correction: string }> = {
  '22P02': {
    what: 'a circle of negative radius',
    correction: ', a circle of the same center and the absolute radius',
  },
  '2200N': {
    what: 'xml content holding a character XML 1.0 forbids, such as a control character, or not well-formed',
    correction: ', the character removed or escaped',
  },
  '2200M': { what: 'an xml document that is not well-formed', correction: '' },
};

/**
 * `error` as the table's refusal when PostgreSQL could not render a value of it (a data exception, SQLSTATE class 22),
 * else `error` itself: such a row could never be archived (nor deleted), and retrying reads it again. The message
 * names the table and the SQLSTATE, never the value, which PostgreSQL's own message may quote. A value that is not
 * UTF-8 (archives are) says so; any other is most likely a VIRTUAL generated column (PostgreSQL 18), computed as the
 * row is read, whose expression fails on an old row (`total / parts` where `parts` is 0).
 */
export function valueRefusal(
  shape: Pick<TableShape, 'schema' | 'name' | 'virtualColumns' | 'readBackColumns'>,
  error: unknown,
): unknown {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string' || !code.startsWith('22') || error instanceof TableNotUsableError)
    return error;
  const table = `${shape.schema}.${shape.name}`;
  const nothing = 'nothing of this batch was archived or deleted';
  if (Object.hasOwn(NOT_UTF8, code)) {
    return new TableNotUsableError(
      `a value of ${table} ${NOT_UTF8[code]}, so it cannot be archived: archives are UTF-8; ${nothing} (correct the value, or leave the table out of the config)`,
      { cause: error },
    );
  }
  const readBack = READ_BACK_REFUSALS[code];
  if (readBack && shape.readBackColumns.length > 0) {
    const columns = shape.readBackColumns.map((c) => `"${c.name}" (${c.type})`).join(', ');
    return new TableNotUsableError(
      `a value of ${table} in ${columns} is one PostgreSQL writes but its input refuses (${readBack.what}), so no restore could bring it back (SQLSTATE ${code}); ${nothing} (correct the value${readBack.correction}, or leave the table out of the config)`,
      { cause: error },
    );
  }
  const virtual =
    shape.virtualColumns.length > 0
      ? `; its VIRTUAL generated columns (${shape.virtualColumns.join(', ')}) are computed as rows are read, and an expression that fails on an old row fails there`
      : '';
  return new TableNotUsableError(
    `a value of ${table} could not be read (SQLSTATE ${code}, a data exception${virtual}); ${nothing} (correct the row, or leave the table out of the config)`,
    { cause: error },
  );
}
