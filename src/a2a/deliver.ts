import { ApiError } from '../errors';
import type { RequestScope } from '../lib/request-scope';
import { agentUrlPolicy } from '../lib/url-policy';
import { wakeWorkspace } from '../provisioning/restart';
import { markDeadIfNotRunning } from './dead-agent';
import { isUpstreamDeadStatus } from './dead-status';
import { dispatchToAgent } from './dispatch';
import { idleTimeoutMs } from './idle-timeout';
import type { TargetRow } from './proxy-context';
import { checkAgentUrl, type UrlPolicy } from './ssrf';

export const RETRY_AFTER_DEAD = 15;
export const RETRY_AFTER_WAKE = 15;
export const RETRY_AFTER_BUSY = 30;

export type Delivery =
  | { kind: 'ok'; status: number; body: Uint8Array; contentType: string | null }
  | { kind: 'agent_error'; status: number }
  | { kind: 'restarting' }
  | { kind: 'busy'; reason: 'timeout' | 'connection_reset' }
  | { kind: 'unreachable' }
  | { kind: 'body_failed'; status: number; reason: 'read_failed' | 'too_large' };

/** Fixed texts for failed deliveries: what activity rows and queue items may say about them. */
export const FAILURE_TEXT: Record<Exclude<Delivery['kind'], 'ok'>, string> = {
  agent_error: 'agent answered with an error status',
  restarting: 'agent not running; restart triggered',
  busy: 'agent busy',
  unreachable: 'agent unreachable',
  body_failed: 'agent response could not be read',
};

/** The agent URL to dispatch to, or the reason there is none (as the caller-facing error). */
export function resolveAgentUrl(scope: RequestScope, target: TargetRow): string {
  if (!target.url) {
    if (target.status === 'hibernated') {
      scope.defer('wake hibernated workspace', () => wakeWorkspace(scope, target.id));
      throw new ApiError(503, 'workspace is hibernated — waking it up', { waking: true, retry_after: RETRY_AFTER_WAKE }, { 'Retry-After': String(RETRY_AFTER_WAKE) });
    }
    throw new ApiError(503, 'workspace has no URL', { status: target.status });
  }
  // Re-checked at dispatch: a URL stored under a looser policy (or by hand) is still refused.
  const href = checkedUrl(target.url, agentUrlPolicy(scope.env));
  if (href === null) throw new ApiError(502, 'workspace URL is not publicly routable');
  return href;
}

/**
 * The check is a pure function of the URL and the policy, and parsing the URL on every dispatch
 * was a measurable part of the proxy's CPU: its answers are remembered per isolate (bounded).
 */
const checkedUrls = new Map<string, string | null>();
const CHECKED_URLS_MAX = 1024;
function checkedUrl(raw: string, policy: UrlPolicy): string | null {
  const key = `${Number(policy.allowPrivate)}${Number(policy.allowLoopback)}${raw}`;
  let href = checkedUrls.get(key);
  if (href === undefined) {
    const check = checkAgentUrl(raw, policy);
    href = check.ok ? check.url.href : null;
    if (checkedUrls.size >= CHECKED_URLS_MAX) checkedUrls.clear();
    checkedUrls.set(key, href);
  }
  return href;
}

/**
 * One dispatch and its classification. A dead-origin status (the gateway/Cloudflare family) or an
 * unreachable agent asks the provisioner before anything is recycled: a healthy agent that merely
 * answered 502 keeps its status.
 */
export async function deliver(scope: RequestScope, target: TargetRow, url: string, payload: string, deadlineMs: number, headerTimeoutMs?: number): Promise<Delivery> {
  const result = await dispatchToAgent(url, payload, deadlineMs, headerTimeoutMs, idleTimeoutMs(scope.env, target));
  switch (result.kind) {
    case 'response':
      if (result.status < 300) return { kind: 'ok', status: result.status, body: result.body, contentType: result.contentType };
      if (isUpstreamDeadStatus(result.status) && (await markDeadIfNotRunning(scope, target))) return { kind: 'restarting' };
      return { kind: 'agent_error', status: result.status };
    case 'unreachable':
      return (await markDeadIfNotRunning(scope, target)) ? { kind: 'restarting' } : { kind: 'unreachable' };
    default:
      return result;
  }
}
