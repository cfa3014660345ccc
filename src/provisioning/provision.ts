import { reissueProvisionCredentials } from '../auth/token-store';
import { endRevokedFeeds } from '../events/revocation';
import { publishEvent } from '../events/publish';
import type { RequestScope } from '../lib/request-scope';
import { openWorkspaceSecrets } from '../secrets/values';
import { markProvisionFailed, recordStart, type CycleRow } from '../workspaces/lifecycle';
import type { Provisioner } from './provisioner';

/**
 * The one text a failed provision shows anyone (broadcast, last_sample_error): the provisioner's
 * own error (machine type, AMI, VPC, daemon text, HTTP bodies) stays in the log (SPEC §17,
 * TestProvisionWorkspaceCP_NoInternalErrorsInBroadcast).
 */
export const PROVISION_FAILED_TEXT = 'provisioning failed';
export const SECRETS_FAILED_TEXT = 'failed to decrypt workspace secrets';
/** SPEC §3: a non-external workspace created where nothing can run it. */
export const NO_PROVISIONER_TEXT = 'Docker not available on this platform instance';

/**
 * Starts the workspace's agent (SPEC §17 provision flow): decrypted secrets, then fresh
 * credentials (all old tokens revoked, a new token and inbound secret, both handed to the agent),
 * then Start. The workspace stays `provisioning` until its agent registers. True when started.
 */
export async function provisionWorkspace(scope: RequestScope, provisioner: Provisioner, row: CycleRow): Promise<boolean> {
  let secrets: Awaited<ReturnType<typeof openWorkspaceSecrets>>;
  try {
    secrets = await openWorkspaceSecrets(scope.db, scope.env.SECRETS_ENCRYPTION_KEY, row.id);
  } catch (err) {
    console.error('provision: secrets unavailable', row.id, err);
    secrets = { ok: false, failedKeys: [] };
  }
  if (!secrets.ok) return failProvision(scope, row.id, SECRETS_FAILED_TEXT);
  // Where the agent reaches the platform: a provision runs outside any request, so it must be
  // configured. Without it every start would be refused; say why once, in the log, not per agent.
  const platformUrl = (scope.env.EXTERNAL_PLATFORM_URL ?? '').replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]/i.test(platformUrl)) {
    console.error('provision: EXTERNAL_PLATFORM_URL is not set (or not an http(s) URL); agents cannot be started', row.id);
    return failProvision(scope, row.id, PROVISION_FAILED_TEXT);
  }

  const credentials = await reissueProvisionCredentials(scope.db, row.id);
  if (!credentials) return false;
  const revoked = credentials.revokedTokenIds.map((tokenId) => ({ workspaceId: row.id, tokenId }));
  scope.defer('end revoked feeds', () => endRevokedFeeds(scope.env, revoked));

  const started = await provisioner.start(row.id, {
    runtime: row.runtime,
    tier: row.tier,
    env: { ...secrets.values, ...agentEnv(row) },
    auth_token: credentials.authToken,
    platform_inbound_secret: credentials.inboundSecret,
    platform_url: platformUrl,
  });
  if (!started.ok) {
    console.error('provision: start failed', row.id, started.failure);
    return failProvision(scope, row.id, PROVISION_FAILED_TEXT);
  }
  if (await recordStart(scope.db, row.id, { url: started.value.url, instanceId: started.value.instance_id })) return true;
  // Paused, hibernated or deleted while it started: it must not keep running.
  const stopped = await provisioner.stop(row.id, { purge: false, instanceId: started.value.instance_id });
  if (!stopped.ok) console.error('provision: could not stop an agent started for a workspace that moved on', row.id, stopped.failure);
  return false;
}

/** What the platform tells the agent about itself beyond its secrets (SPEC §17 step 2). */
function agentEnv(row: CycleRow): Record<string, string> {
  const env: Record<string, string> = {};
  if (row.role) env.MOLECULE_AGENT_ROLE = row.role;
  if (row.model) env[row.runtime === 'hermes' ? 'HERMES_DEFAULT_MODEL' : 'MODEL_PROVIDER'] = row.model;
  return env;
}

async function failProvision(scope: RequestScope, id: string, text: string): Promise<false> {
  if (await markProvisionFailed(scope.db, id, text)) publishEvent(scope, 'WORKSPACE_PROVISION_FAILED', id, { error: text });
  return false;
}
