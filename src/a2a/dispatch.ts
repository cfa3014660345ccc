import { connect } from 'cloudflare:sockets';
import { MiB, readStreamCapped } from '../lib/body';

export const MAX_RESPONSE_BYTES = 10 * MiB;
const RESPONSE_HEADER_TIMEOUT_MS = 60_000;
export const AGENT_CALLER_CEILING_MS = 30 * 60_000;
export const CANVAS_CALLER_CEILING_MS = 5 * 60_000;

export type DispatchResult =
  | { kind: 'response'; status: number; body: Uint8Array; contentType: string | null }
  /** Headers arrived, the body did not (or was over the cap): the agent may have acted on it. */
  | { kind: 'body_failed'; status: number; reason: 'read_failed' | 'too_large' }
  /** The agent is there but could not take the request now: worth queueing. */
  | { kind: 'busy'; reason: 'timeout' | 'connection_reset' }
  | { kind: 'unreachable' };

/**
 * POSTs the normalised body to the agent. Workers' fetch exposes no separate connect timeout, so
 * the response-header deadline (60 s, or the overall deadline if shorter) bounds connect + TLS +
 * first byte; the overall deadline bounds the body too. There is deliberately no shorter
 * whole-request cap: agents legitimately think for minutes.
 */
export async function dispatchToAgent(url: string, body: string, deadlineMs: number, headerTimeoutMs = RESPONSE_HEADER_TIMEOUT_MS): Promise<DispatchResult> {
  const controller = new AbortController();
  const abort = () => controller.abort(new DOMException('agent deadline exceeded', 'TimeoutError'));
  const overallTimer = setTimeout(abort, deadlineMs);
  // Only until the headers arrive: a slow body is governed by the overall deadline alone.
  const headerTimer = setTimeout(abort, Math.min(headerTimeoutMs, deadlineMs));
  try {
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body,
        signal: controller.signal,
        redirect: 'manual',
      });
    } catch (err) {
      return await classifyTransportError(err, url);
    } finally {
      clearTimeout(headerTimer);
    }
    const read = await readCapped(res, MAX_RESPONSE_BYTES);
    if (read.kind !== 'ok') return { kind: 'body_failed', status: res.status, reason: read.kind };
    return { kind: 'response', status: res.status, body: read.bytes, contentType: res.headers.get('Content-Type') };
  } finally {
    clearTimeout(overallTimer);
  }
}

/**
 * Timeouts and dropped connections mean "busy"; anything else (refused, DNS, TLS) is unreachable.
 * workerd reports a refused connect and a mid-request reset with the same error, so a lost
 * connection is told apart by opening a bare TCP connection to the agent: if that succeeds the
 * agent is up and dropped our request (busy), if not, nothing is listening (unreachable).
 */
export async function classifyTransportError(err: unknown, url: string): Promise<DispatchResult> {
  const name = err instanceof Error ? err.name : '';
  const message = err instanceof Error ? err.message : String(err);
  if (name === 'TimeoutError' || name === 'AbortError') return { kind: 'busy', reason: 'timeout' };
  if (/connection (lost|reset)|EOF|socket hang up|ECONNRESET|disconnected/i.test(message) && (await acceptsConnections(url))) {
    return { kind: 'busy', reason: 'connection_reset' };
  }
  console.warn('agent unreachable', name, message);
  return { kind: 'unreachable' };
}

const PROBE_TIMEOUT_MS = 2_000;

async function acceptsConnections(url: string): Promise<boolean> {
  const { hostname, port, protocol } = new URL(url);
  let socket: ReturnType<typeof connect> | undefined;
  try {
    socket = connect({ hostname: hostname.replace(/^\[|\]$/g, ''), port: Number(port) || (protocol === 'https:' ? 443 : 80) });
    socket.closed.catch(() => {}); // a refused probe rejects `closed` too; that is the answer, not an error
    await Promise.race([socket.opened, new Promise((_, reject) => setTimeout(() => reject(new Error('probe timeout')), PROBE_TIMEOUT_MS))]);
    return true;
  } catch {
    return false;
  } finally {
    socket?.close().catch(() => {});
  }
}

async function readCapped(res: Response, maxBytes: number): Promise<{ kind: 'ok'; bytes: Uint8Array } | { kind: 'too_large' } | { kind: 'read_failed' }> {
  const declared = Number(res.headers.get('Content-Length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await res.body?.cancel().catch(() => {});
    return { kind: 'too_large' };
  }
  try {
    const bytes = await readStreamCapped(res.body, maxBytes);
    return bytes === 'too_large' ? { kind: 'too_large' } : { kind: 'ok', bytes };
  } catch (err) {
    // The overall deadline aborting mid-body lands here too: the agent got the request.
    console.warn('agent response body read failed', err);
    return { kind: 'read_failed' };
  }
}
