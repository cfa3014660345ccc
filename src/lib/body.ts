import type { Context } from 'hono';
import type { z } from 'zod';
import { ApiError } from '../errors';
import { JSON_PROBLEM_TEXT, utf8, type JsonTextProblem } from './json-text';

export const KiB = 1024;
export const MiB = 1024 * KiB;

/**
 * Reads the raw request body with a hard byte cap. A declared Content-Length over the cap is
 * rejected before reading; a chunked body is counted as it streams, so no client can exceed it.
 */
export async function readBodyText(c: Context, maxBytes: number): Promise<string> {
  const length = c.req.header('Content-Length');
  const declared = length && /^[0-9]+$/.test(length) ? Number(length) : NaN;
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(maxBytes);
  let read: Uint8Array | 'too_large';
  try {
    // A framed body (Content-Length, no chunking) cannot outgrow its declared length, so it is
    // read in one call, cheaper than chunk by chunk; anything else is counted as it streams.
    read =
      Number.isFinite(declared) && !c.req.header('Transfer-Encoding')
        ? capped(new Uint8Array(await c.req.raw.arrayBuffer()), maxBytes)
        : await readStreamCapped(c.req.raw.body, maxBytes);
  } catch {
    throw new ApiError(400, 'failed to read request body');
  }
  if (read === 'too_large') throw tooLarge(maxBytes);
  return utf8.decode(read);
}

function capped(bytes: Uint8Array, maxBytes: number): Uint8Array | 'too_large' {
  return bytes.byteLength > maxBytes ? 'too_large' : bytes;
}

/**
 * Reads a stream to the end, stopping (and cancelling it) as soon as it exceeds `maxBytes`.
 * `framedBytes`: the body's declared Content-Length; once that many bytes arrived the body is
 * complete (HTTP framing ends it there), so the read that would only report the end is skipped.
 */
export async function readStreamCapped(
  stream: ReadableStream<Uint8Array> | null,
  maxBytes: number,
  onChunk?: () => void,
  framedBytes?: number,
): Promise<Uint8Array | 'too_large'> {
  if (!stream) return new Uint8Array();
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (total !== framedBytes) {
    const { done, value } = await reader.read();
    if (done) break;
    onChunk?.();
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      return 'too_large';
    }
    chunks.push(value);
  }
  if (total === framedBytes) reader.releaseLock();
  if (chunks.length === 1) return chunks[0]!;
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

export function jsonProblem(problem: JsonTextProblem | 'invalid'): ApiError {
  if (problem === 'invalid') return new ApiError(400, 'request body must be valid JSON');
  return new ApiError(400, JSON_PROBLEM_TEXT[problem], problem === 'too_deep' ? { code: 'json_too_deep' } : { code: 'json_unstorable_text' });
}

const MAX_ISSUES = 10;
const MAX_SEGMENT = 64;
const PLAIN_SEGMENT = /^[A-Za-z0-9_]+$/;
const MAX_MESSAGE = 200;

/**
 * Validation issues as the caller sees them: the field and the rule, never the value. zod's
 * messages name types, bounds and allowed options but not the input, except for unknown keys;
 * the path, though, carries record keys, which are input. So the path keeps only short plain
 * segments, unknown keys get a fixed text, and the list is capped, so a body with 10,000 bad
 * fields (or a 5,000-character key) still gets a small answer.
 */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): { path: string; message: string }[] {
  return issues.slice(0, MAX_ISSUES).map((issue) => ({
    path: issue.path.map(pathSegment).join('.'),
    message: issue.code === 'unrecognized_keys' ? 'unknown field' : issue.message.slice(0, MAX_MESSAGE),
  }));
}

function pathSegment(seg: PropertyKey): string {
  if (typeof seg === 'number') return String(seg);
  return typeof seg === 'string' && seg.length <= MAX_SEGMENT && PLAIN_SEGMENT.test(seg) ? seg : '*';
}

function tooLarge(maxBytes: number): ApiError {
  return new ApiError(413, 'request body too large', { max_bytes: maxBytes });
}
