import { SIGNATURE_WINDOW_SECONDS, verifyRequest } from '../../src/provisioning/protocol.ts';

/**
 * Nonces seen within the signature window. A nonce is remembered until its timestamp leaves the
 * window, after which verifyRequest refuses the request anyway, so expiry never reopens a replay.
 * Bounded: when full of live entries, new requests are refused (busy) rather than evicting a live
 * nonce, which would reopen a replay.
 */
export class NonceCache {
  readonly #expiresAt = new Map<string, number>();
  readonly #max: number;
  readonly #notBeforeSeconds: number;

  /**
   * `createdAt`: a request signed before this cache existed may have been answered by a previous
   * process (a restart empties the cache), so it counts as replayed. The cost: after a restart,
   * an agent whose clock runs s seconds ahead of the Worker's refuses requests for s seconds.
   */
  constructor(max = 100_000, createdAt = Date.now()) {
    this.#max = max;
    this.#notBeforeSeconds = Math.floor(createdAt / 1000);
  }

  /** 'fresh' (now remembered), 'replayed', or 'full'. */
  remember(nonce: string, timestampSeconds: number, now = Date.now()): 'fresh' | 'replayed' | 'full' {
    if (timestampSeconds < this.#notBeforeSeconds) return 'replayed';
    const seenUntil = this.#expiresAt.get(nonce);
    if (seenUntil !== undefined && seenUntil >= now) return 'replayed';
    if (this.#expiresAt.size >= this.#max) this.#sweep(now);
    if (this.#expiresAt.size >= this.#max) return 'full';
    this.#expiresAt.set(nonce, (timestampSeconds + SIGNATURE_WINDOW_SECONDS + 1) * 1000);
    return 'fresh';
  }

  get size(): number {
    return this.#expiresAt.size;
  }

  #sweep(now: number): void {
    for (const [nonce, expiresAt] of this.#expiresAt) if (expiresAt < now) this.#expiresAt.delete(nonce);
  }
}

export type AuthOutcome = 'ok' | 'unauthorized' | 'busy';

export async function authenticate(
  secret: string,
  nonces: NonceCache,
  request: { method: string; pathWithQuery: string; body: string; header: (name: string) => string | undefined },
  now = Date.now(),
): Promise<AuthOutcome> {
  const check = await verifyRequest(secret, request.method, request.pathWithQuery, request.body, request.header, now);
  if (!check.ok) return 'unauthorized';
  const seen = nonces.remember(check.nonce, check.timestamp, now);
  return seen === 'fresh' ? 'ok' : seen === 'replayed' ? 'unauthorized' : 'busy';
}
