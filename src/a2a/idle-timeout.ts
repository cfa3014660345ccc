import type { Bindings } from '../env';
import { DEFAULT_IDLE_TIMEOUT_MS } from './dispatch';
import type { TargetRow } from './proxy-context';

/** Longer silences are meaningless (every dispatch has a shorter overall deadline) and overflow timers. */
const MAX_IDLE_TIMEOUT_MS = 24 * 60 * 60_000;

/**
 * The silence window for one dispatch: the workspace's own `idle_timeout_seconds` from its last
 * heartbeat (already in the proxy's context row, so no extra read), else A2A_IDLE_TIMEOUT_SECONDS,
 * else 5 minutes.
 */
export function idleTimeoutMs(env: Pick<Bindings, 'A2A_IDLE_TIMEOUT_SECONDS'>, target: Pick<TargetRow, 'runtime_metadata'>): number {
  const own = target.runtime_metadata?.idle_timeout_seconds;
  if (typeof own === 'number' && Number.isSafeInteger(own) && own > 0) return Math.min(own * 1000, MAX_IDLE_TIMEOUT_MS);
  return platformIdleTimeoutMs(env);
}

let reported: string | undefined;

/** A2A_IDLE_TIMEOUT_SECONDS as a positive integer; anything else is logged (once per value) and the default used. */
export function platformIdleTimeoutMs(env: Pick<Bindings, 'A2A_IDLE_TIMEOUT_SECONDS'>): number {
  const raw = env.A2A_IDLE_TIMEOUT_SECONDS?.trim();
  if (!raw) return DEFAULT_IDLE_TIMEOUT_MS;
  if (/^[1-9][0-9]{0,8}$/.test(raw)) return Math.min(Number(raw) * 1000, MAX_IDLE_TIMEOUT_MS);
  if (reported !== raw) {
    reported = raw;
    console.warn(`A2A_IDLE_TIMEOUT_SECONDS is not a positive integer; using the default of ${DEFAULT_IDLE_TIMEOUT_MS / 1000} s`);
  }
  return DEFAULT_IDLE_TIMEOUT_MS;
}
