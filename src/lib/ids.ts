import { z } from 'zod';

// Any 8-4-4-4-12 hex id Postgres accepts; version bits are not ours to police.
const uuid = z.guid();

export function isUuid(value: unknown): value is string {
  return uuid.safeParse(value).success;
}
