import { connect } from 'cloudflare:sockets';
import { MiB, readStreamCapped } from '../lib/body';

export const MAX_RESPONSE_BYTES = 10 * MiB;
/** Framed answers up to this size are read in one call (see readCapped). */
const ONE_CALL_MAX_BYTES = 64 * 1024;
const RESPONSE_HEADER_TIMEOUT_MS = 60_000;
export const AGENT_CALLER_CEILING_MS = 30 * 60_000;
export const CANVAS_CALLER_CEILING_MS = 5 * 60_000;
/** How long an agent may send nothing at all before the dispatch gives up on it (SPEC §8.7). */
export const DEFAULT_IDLE_TIMEOUT_MS = 5 * 60_000;

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
 * whole-request cap: agents legitimately think for minutes. The idle timeout ends a dispatch
 * whose agent has sent nothing for that long: before the headers that is `busy` (queued), after
 * them an unreadable body (the agent had the request).
 */
export async function dispatchToAgent(
  url: string,
  body: string,
  deadlineMs: number,
  headerTimeoutMs = RESPONSE_HEADER_TIMEOUT_MS,
  idleTimeoutMs = DEFAULT_IDLE_TIMEOUT_MS,
): Promise<DispatchResult> {
  const controller = new AbortController();
  const clock = new DispatchClock(() => controller.abort(new DOMException('agent deadline exceeded', 'TimeoutError')), {
    deadlineMs,
    headerTimeoutMs: Math.min(headerTimeoutMs, deadlineMs),
    idleTimeoutMs,
  });
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
    }
    clock.headersArrived();
    const read = await readCapped(res, MAX_RESPONSE_BYTES, () => clock.touch());
    if (read.kind !== 'ok') return { kind: 'body_failed', status: res.status, reason: read.kind };
    return { kind: 'response', status: res.status, body: read.bytes, contentType: res.headers.get('Content-Type') };
  } finally {
    clock.stop();
  }
}

/**
 * The three limits of one dispatch on ONE timer: the overall deadline, the header deadline (only
 * until the headers arrive: a slow body is governed by the other two) and the idle timeout
 * (silence, not duration: any byte from the agent restarts it, so an agent that keeps streaming
 * runs to the overall deadline and a silent one is let go). Restarting timers per chunk, or
 * keeping three, cost a few percent of the Worker's CPU in the bench; this timer fires at the
 * earliest possible expiry and re-arms itself for whatever is left.
 */
class DispatchClock {
  private readonly started = Date.now();
  private last = this.started;
  private waitingForHeaders = true;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly expire: () => void,
    private readonly limits: { deadlineMs: number; headerTimeoutMs: number; idleTimeoutMs: number },
  ) {
    this.arm();
  }

  headersArrived(): void {
    this.waitingForHeaders = false;
    this.touch();
  }

  touch(): void {
    this.last = Date.now();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /** Milliseconds until the first limit runs out; 0 or less once one has. */
  private remaining(now: number): number {
    const { deadlineMs, headerTimeoutMs, idleTimeoutMs } = this.limits;
    let at = Math.min(this.started + deadlineMs, this.last + idleTimeoutMs);
    if (this.waitingForHeaders) at = Math.min(at, this.started + headerTimeoutMs);
    return at - now;
  }

  private arm(): void {
    this.timer = setTimeout(() => {
      if (this.remaining(Date.now()) <= 0) this.expire();
      else this.arm();
    }, Math.max(0, this.remaining(Date.now())));
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

async function readCapped(res: Response, maxBytes: number, onChunk: () => void): Promise<{ kind: 'ok'; bytes: Uint8Array } | { kind: 'too_large' } | { kind: 'read_failed' }> {
  const declared = Number(res.headers.get('Content-Length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await res.body?.cancel().catch(() => {});
    return { kind: 'too_large' };
  }
  try {
    const framed = framedLength(res.headers);
    // A small framed answer (nearly every agent's) is read in one call: a stream reader costs a
    // twentieth of the proxy's CPU. For it, the idle window counts from its headers rather than
    // from each byte; a larger or chunked answer restarts the window on every chunk.
    const bytes =
      framed !== undefined && framed <= ONE_CALL_MAX_BYTES ? new Uint8Array(await res.arrayBuffer()) : await readStreamCapped(res.body, maxBytes, onChunk, framed);
    return bytes === 'too_large' ? { kind: 'too_large' } : { kind: 'ok', bytes };
  } catch (err) {
    // The overall deadline or the idle timer aborting mid-body lands here too: the agent got the request.
    console.warn('agent response body read failed', err);
    return { kind: 'read_failed' };
  }
}

/**
 * The body's length when HTTP framing fixes it: a plain Content-Length. Not with a
 * Transfer-Encoding, which overrides it (workerd still shows the Content-Length of a chunked
 * answer), nor with a Content-Encoding (fetch decodes the body: the bytes read are not the bytes
 * declared). Reading on to the end is always right; stopping early only when this is certain.
 */
export function framedLength(headers: Headers): number | undefined {
  const length = headers.get('Content-Length');
  if (length === null || !/^[0-9]{1,15}$/.test(length) || headers.has('Transfer-Encoding') || headers.has('Content-Encoding')) return undefined;
  return Number(length);
}
