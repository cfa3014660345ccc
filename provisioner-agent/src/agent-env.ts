import type { StartRequest } from '../../src/provisioning/protocol.ts';

export const CONFIG_DIR = '/configs';

/** Tier 0 (the default) and anything unknown run as tier 2 (SPEC §17). */
export const effectiveTier = (tier: number) => (tier >= 1 && tier <= 4 ? tier : 2);

/**
 * The agent's environment (SPEC §17): the request's env, then the platform's keys, which win, so
 * a workspace secret named WORKSPACE_ID cannot rename the agent.
 */
export function agentEnv(workspaceId: string, request: StartRequest): Record<string, string> {
  return {
    ...request.env,
    WORKSPACE_ID: workspaceId,
    WORKSPACE_CONFIG_PATH: CONFIG_DIR,
    // The runtime's token and inbound-secret files are `${CONFIGS_DIR}/.auth_token` etc.
    // (workspace/platform_auth.py); explicit, so no runtime default can point elsewhere.
    CONFIGS_DIR: CONFIG_DIR,
    PLATFORM_URL: request.platform_url,
    MOLECULE_URL: request.platform_url,
    TIER: String(effectiveTier(request.tier)),
    PLUGINS_DIR: '/plugins',
    PYTHONPATH: '/app',
  };
}
