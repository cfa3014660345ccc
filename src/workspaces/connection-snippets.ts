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
  claude_code_channel_snippet: string;
};

/**
 * Copy-paste material for an operator wiring an external agent (no container of ours). The token
 * is deliberately NOT baked into the snippets: they read it from the environment, so a snippet
 * pasted into a ticket or a chat does not leak the credential.
 */
export function connectionInfo(platformUrl: string, workspaceId: string, authToken: string, mode: DeliveryMode): ConnectionInfo {
  const vars = { PLATFORM_URL: platformUrl, WORKSPACE_ID: workspaceId };
  const fill = (template: string) => template.replace(/\{\{(\w+)\}\}/g, (_, key: keyof typeof vars) => vars[key] ?? '');
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

const PYTHON = `# pip install requests ; export WORKSPACE_AUTH_TOKEN=...
import os, time, requests

PLATFORM = "{{PLATFORM_URL}}"
WORKSPACE_ID = "{{WORKSPACE_ID}}"
HEADERS = {"Authorization": f"Bearer {os.environ['WORKSPACE_AUTH_TOKEN']}"}

requests.post(f"{PLATFORM}/registry/register", headers=HEADERS, json={
    "id": WORKSPACE_ID, "delivery_mode": "poll",
    "agent_card": {"name": "my-agent", "description": "external agent", "version": "1.0.0"},
}).raise_for_status()

cursor = None
while True:
    requests.post(f"{PLATFORM}/registry/heartbeat", headers=HEADERS,
                  json={"workspace_id": WORKSPACE_ID, "active_tasks": 0}).raise_for_status()
    params = {"type": "a2a_receive"}
    if cursor:
        params["since_id"] = cursor
    r = requests.get(f"{PLATFORM}/workspaces/{WORKSPACE_ID}/activity", headers=HEADERS, params=params)
    if r.status_code == 410:  # cursor pruned: resync from the recent feed
        cursor = None
        continue
    r.raise_for_status()
    rows = r.json()
    for row in (rows if cursor else reversed(rows)):
        if row.get("method") != "notify":
            print("task:", row.get("request_body"))
        cursor = row["id"]
    time.sleep(5)
`;

const CHANNEL = `# Claude Code channel plugin: Molecule-AI/molecule-mcp-claude-channel
# 1. Install the plugin in Claude Code:  /plugin install Molecule-AI/molecule-mcp-claude-channel
# 2. Write its .env (keep the token out of version control):
MOLECULE_PLATFORM_URL={{PLATFORM_URL}}
MOLECULE_WORKSPACE_ID={{WORKSPACE_ID}}
MOLECULE_WORKSPACE_TOKEN=<paste auth_token here>
MOLECULE_DELIVERY_MODE=poll
`;
