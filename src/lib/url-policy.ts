import { checkAgentUrl, type UrlPolicy } from '../a2a/ssrf';
import { isDevMode, type Bindings } from '../env';
import { ApiError } from '../errors';

/**
 * One policy for register time and dispatch time. Private ranges only when the deployment says
 * it runs next to its agents (self-hosted); loopback only in explicit dev mode.
 */
export function agentUrlPolicy(env: Bindings): UrlPolicy {
  const mode = (env.MOLECULE_DEPLOY_MODE ?? '').toLowerCase();
  return {
    allowPrivate: mode === 'self-hosted' || mode === 'selfhosted' || mode === 'standalone',
    allowLoopback: isDevMode(env),
  };
}

/** Register-time gate: a URL the proxy would refuse is refused before it is stored. */
export function assertAgentUrl(env: Bindings, raw: string): string {
  const check = checkAgentUrl(raw, agentUrlPolicy(env));
  if (!check.ok) throw new ApiError(400, 'invalid agent url', { reason: check.reason });
  // The parsed form is what is stored, and so what dispatch contacts.
  return check.url.href;
}
