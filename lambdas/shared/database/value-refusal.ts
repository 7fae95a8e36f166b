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

/**
 * What reading a readBackColumns value back through its type's input met, by SQLSTATE: a text it refuses, or (22P02,
 * also a circle's refusal) one it reads as another value. Some are not data exceptions (class 22): the input's
 * syntax error (42601) and length limit (54000).
 */
const READ_BACK_REFUSALS: Record<string, string> = {
  '22P02':
    'a circle of negative radius, or a value whose text reads back as another: a box with swapped corners, a timetz offset past ±15:59:59 such as +1000',
  '2200N': 'xml content holding a character XML 1.0 forbids, such as a control character, or not well-formed',
  '2200M': 'an xml document that is not well-formed',
  '22009': 'a timetz offset past ±15:59:59',
  '22023': 'a tsquery phrase distance past 16384',
  '42601': 'a tsquery or tsvector whose text its input cannot parse',
  '54000': 'a tsvector word or value longer than its input takes',
  '22007': 'the smallest interval, which PostgreSQL 18 writes but does not read',
};

/**
 * `error` as the table's refusal when PostgreSQL could not render a value of it (a data exception, SQLSTATE class 22,
 * or what reading a readBackColumns value back met, READ_BACK_REFUSALS), else `error` itself: such a row could never be archived (nor deleted), and retrying reads it again. The message
 * names the table and the SQLSTATE, never the value, which PostgreSQL's own message may quote. A value that is not
 * UTF-8 (archives are) says so; any other is most likely a VIRTUAL generated column (PostgreSQL 18), computed as the
 * row is read, whose expression fails on an old row (`total / parts` where `parts` is 0).
 */
export function valueRefusal(
  shape: Pick<TableShape, 'schema' | 'name' | 'virtualColumns' | 'readBackColumns'>,
  error: unknown,
): unknown {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string' || error instanceof TableNotUsableError) return error;
  const table = `${shape.schema}.${shape.name}`;
  const nothing = 'nothing of this batch was archived or deleted';
  const readBack = shape.readBackColumns.length > 0 ? READ_BACK_REFUSALS[code] : undefined;
  if (readBack) {
    const columns = shape.readBackColumns.map((c) => `"${c.name}" (${c.type})`).join(', ');
    return new TableNotUsableError(
      `a value of ${table} in ${columns} is one PostgreSQL writes but its input refuses or reads as another value (${readBack}), so no restore could bring it back as it is (SQLSTATE ${code}); ${nothing} (correct the value, or leave the table out of the config)`,
      { cause: error },
    );
  }
  if (!code.startsWith('22')) return error;
  if (Object.hasOwn(NOT_UTF8, code)) {
    return new TableNotUsableError(
      `a value of ${table} ${NOT_UTF8[code]}, so it cannot be archived: archives are UTF-8; ${nothing} (correct the value, or leave the table out of the config)`,
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
