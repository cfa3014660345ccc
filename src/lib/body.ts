import type { Context } from 'hono';
import type { z } from 'zod';
import { ApiError } from '../errors';

export const KiB = 1024;
export const MiB = 1024 * KiB;

/**
 * Reads the raw request body with a hard byte cap. Content-Length is trusted only to reject early;
 * the stream itself is counted, so a lying or chunked client cannot exceed the cap.
 */
export async function readBodyText(c: Context, maxBytes: number): Promise<string> {
  const declared = Number(c.req.header('Content-Length'));
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(maxBytes);
  let read: Uint8Array | 'too_large';
  try {
    read = await readStreamCapped(c.req.raw.body, maxBytes);
  } catch {
    throw new ApiError(400, 'failed to read request body');
  }
  if (read === 'too_large') throw tooLarge(maxBytes);
  return new TextDecoder().decode(read);
}

/** Reads a stream to the end, stopping (and cancelling it) as soon as it exceeds `maxBytes`. */
export async function readStreamCapped(stream: ReadableStream<Uint8Array> | null, maxBytes: number): Promise<Uint8Array | 'too_large'> {
  if (!stream) return new Uint8Array();
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      return 'too_large';
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

/** JSON body → zod-validated value, or a 400 naming the offending fields (never their values). */
export async function parseJsonBody<S extends z.ZodType>(c: Context, schema: S, maxBytes = 64 * KiB): Promise<z.output<S>> {
  const text = await readBodyText(c, maxBytes);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ApiError(400, 'request body must be valid JSON');
  }
  return validate(schema, json, 'invalid request body');
}

export function validate<S extends z.ZodType>(schema: S, value: unknown, message: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new ApiError(400, message, {
      issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    });
  }
  return parsed.data;
}

function tooLarge(maxBytes: number): ApiError {
  return new ApiError(413, 'request body too large', { max_bytes: maxBytes });
}
