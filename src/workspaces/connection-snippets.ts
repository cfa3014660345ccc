import type { DeliveryMode } from '../db/schema';

export type ConnectionInfo = {
  workspace_id: string;
  platform_url: string;
  auth_token: string;
  delivery_mode: DeliveryMode;
  registry_endpoint: string;
  heartbeat_endpoint: string;
  activity_endpoint: string;
  curl_register_template: string;
  python_snippet: string;
  molecule_connect_snippet: string;
  claude_code_channel_snippet: string;
};

/** Where the operator pastes the one-time token; the snippets never carry it themselves. */
export const TOKEN_PLACEHOLDER = '<paste auth_token from the create response>';

/**
 * Copy-paste material for an operator wiring an external agent (no container of ours). The token
 * is deliberately NOT baked into the snippets: they read it from the environment, so a snippet
 * pasted into a ticket or a chat does not leak the credential.
 */
export function connectionInfo(platformUrl: string, workspaceId: string, authToken: string, mode: DeliveryMode): ConnectionInfo {
  const vars = { PLATFORM_URL: platformUrl, WORKSPACE_ID: workspaceId };
  const fill = (template: string) => template.replace(/\{\{(\w+)\}\}/g, (_, key: keyof typeof vars) => vars[key] ?? '').replaceAll('<TOKEN>', TOKEN_PLACEHOLDER);
  return {
    workspace_id: workspaceId,
    platform_url: platformUrl,
    auth_token: authToken,
    delivery_mode: mode,
    registry_endpoint: `${platformUrl}/registry/register`,
    heartbeat_endpoint: `${platformUrl}/registry/heartbeat`,
    activity_endpoint: `${platformUrl}/workspaces/${workspaceId}/activity`,
    curl_register_template: fill(mode === 'poll' ? CURL_POLL : CURL_PUSH),
    python_snippet: fill(PYTHON),
    molecule_connect_snippet: fill(MOLECULE_CONNECT),
    claude_code_channel_snippet: fill(CHANNEL),
  };
}

const CURL_PUSH = `curl -sS -X POST '{{PLATFORM_URL}}/registry/register' \\
  -H "Authorization: Bearer $WORKSPACE_AUTH_TOKEN" \\
  -H 'Content-Type: application/json' \\
  -d '{"id":"{{WORKSPACE_ID}}","url":"'"$AGENT_URL"'","delivery_mode":"push","agent_card":{"name":"my-agent","description":"external agent","version":"1.0.0"}}'`;

const CURL_POLL = `curl -sS -X POST '{{PLATFORM_URL}}/registry/register' \\
  -H "Authorization: Bearer $WORKSPACE_AUTH_TOKEN" \\
  -H 'Content-Type: application/json' \\
  -d '{"id":"{{WORKSPACE_ID}}","delivery_mode":"poll","agent_card":{"name":"my-agent","description":"external agent","version":"1.0.0"}}'`;

// The Python SDK's own runner (molecule-ai-sdk, `python -m molecule_agent connect`): with --token it
// skips register and polls the feed itself. Its --platform-url and --workspace-id are required flags.
const PYTHON = `# pip install molecule-ai-sdk   (then write my_agent.py with: def handle(message): return "reply text")
export MOLECULE_PLATFORM_URL={{PLATFORM_URL}}
export MOLECULE_WORKSPACE_ID={{WORKSPACE_ID}}
export MOLECULE_WORKSPACE_TOKEN='<TOKEN>'
python -m molecule_agent connect --platform-url "$MOLECULE_PLATFORM_URL" --workspace-id "$MOLECULE_WORKSPACE_ID" \\
  --token "$MOLECULE_WORKSPACE_TOKEN" --handler my_agent:handle
`;

// molecule-cli: `molecule connect <workspace id>` reads MOLECULE_API_URL and MOLECULE_WORKSPACE_TOKEN.
const MOLECULE_CONNECT = `export MOLECULE_API_URL={{PLATFORM_URL}}
export MOLECULE_WORKSPACE_TOKEN='<TOKEN>'
molecule connect {{WORKSPACE_ID}}
`;

// The channel plugin reads ~/.claude/channels/molecule/.env with a strict KEY=value parser: no
// quotes, no inline comments (both would end up inside the value), plural ID/TOKEN lists.
const CHANNEL = `# Claude Code channel plugin (Molecule-AI/molecule-mcp-claude-channel): install it with
#   /plugin install Molecule-AI/molecule-mcp-claude-channel
# then save these lines as ~/.claude/channels/molecule/.env (chmod 600; keep the token out of version control):
MOLECULE_PLATFORM_URL={{PLATFORM_URL}}
MOLECULE_WORKSPACE_IDS={{WORKSPACE_ID}}
MOLECULE_WORKSPACE_TOKENS=<TOKEN>
`;
