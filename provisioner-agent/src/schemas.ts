import { z } from 'zod';

// Everything the Worker sends is validated here before any backend sees it. Strict objects: an
// unknown field is a contract mismatch worth failing loudly on, not something to ignore.

const noNul = (s: string) => !s.includes('\u0000');
/** Secrets written to files: visible ASCII, so a file never gains a stray newline or control byte. */
const secretValue = z.string().regex(/^[\x21-\x7e]{16,512}$/);

/**
 * Lower-cased: one workspace must map to one container, volume, tag value and serialisation key,
 * whatever case the caller wrote its id in (Postgres compares uuids case-insensitively).
 */
export const WorkspaceId = z.uuid().transform((id) => id.toLowerCase());
export const InstanceId = z.string().regex(/^i-[0-9a-f]{8,17}$/);

export const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
export const MAX_ENV_ENTRIES = 256;
export const MAX_ENV_VALUE_CHARS = 16 * 1024;

/** A runtime may select the image (AGENT_IMAGE `{runtime}`), so only a short image-name-safe token. */
export const Runtime = z.string().regex(/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/).max(32);

export const StartRequestSchema = z.strictObject({
  runtime: Runtime,
  /** 0 = the default tier. */
  tier: z.int().min(0).max(4),
  env: z
    .record(z.string().regex(ENV_KEY), z.string().max(MAX_ENV_VALUE_CHARS).refine(noNul))
    .refine((env) => Object.keys(env).length <= MAX_ENV_ENTRIES),
  auth_token: secretValue,
  platform_inbound_secret: secretValue,
  platform_url: z
    .url({ protocol: /^https?$/ })
    .max(2048),
});

export const StopRequestSchema = z.strictObject({
  purge: z.boolean(),
  instance_id: InstanceId.nullish(),
});

export const InstanceQuerySchema = z.strictObject({ instance_id: InstanceId.optional() });
export const EmptyQuerySchema = z.strictObject({});
