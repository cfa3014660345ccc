import { sql } from 'drizzle-orm';
import type { AnyPgColumn } from 'drizzle-orm/pg-core';
import { readStoredJson } from '../lib/json-text';

/**
 * A jsonb column read through the JSON gate: selected as text and parsed here, so a value stored
 * before the gate existed (nested thousands deep) comes back as a small marker instead of
 * overflowing the stack of whatever renders it. Use for every jsonb column a route returns.
 */
export function storedJson(column: AnyPgColumn) {
  return sql<unknown>`${column}::text`.mapWith(readStoredJson);
}
