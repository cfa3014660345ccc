import { z } from 'zod';
import { ApiError } from '../errors';

// Any 8-4-4-4-12 hex id Postgres accepts; version bits are not ours to police.
const uuid = z.guid();

export function isUuid(value: unknown): value is string {
  return uuid.safeParse(value).success;
}

/** Path ids are checked before any DB access so a malformed id never reaches a query. */
export function parseWorkspaceId(value: string | undefined): string {
  if (!isUuid(value)) throw new ApiError(400, 'invalid workspace ID');
  return value.toLowerCase();
}
