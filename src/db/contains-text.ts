import { sql, type SQL } from 'drizzle-orm';
import type { AnyPgColumn } from 'drizzle-orm/pg-core';

/** Case-insensitive substring match on a literal: the caller's `%`, `_` and `\` match themselves. */
export function containsText(column: AnyPgColumn, text: string): SQL {
  const pattern = `%${text.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
  return sql`${column} ILIKE ${pattern} ESCAPE '\\'`;
}
