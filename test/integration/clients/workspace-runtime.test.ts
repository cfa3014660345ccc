// Replays the agent runtime inside a workspace container call for call, asserting exactly the fields
// it reads. Source: molecule-core `workspace/` as continued in EnterOS-AI/enteros-core @ 7b40a03
// (RT3; RT1 = Molecule-AI/molecule-ai-workspace-runtime molecule_runtime/, RT2 = Molecule-AI/molecule-core
// workspace/, where they differ): main.py (register), heartbeat.py, watcher.py and
// a2a_tools_identity.py (update-card), a2a_client.py (discover_peer, send_a2a_message,
// get_workspace_info), a2a_tools_messaging.py (send_message_to_user), a2a_tools_delegation.py
// (tool_delegate_task_async and the _delegate_sync_via_polling loop).
import { describe, expect, it } from 'vitest';
import { ADMIN, BASE, call, callJson, createWorkspace, loopback, received, registeredAgent, sql, waitFor } from '../../support/api';
import { waitForStart } from '../../support/provisioner';

/** PLATFORM_URL as the container sees it; platform_auth.py auth_headers() sends it as Origin on every call. */
const PLATFORM_URL = BASE;

async function sha256Hex(s: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(s));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The runtime's state and calls for one workspace (WORKSPACE_ID). `configs`: what the provisioner
 * wrote to /configs (.auth_token, .platform_inbound_secret) before the container started.
 */
function runtime(workspaceId: string, configs: { auth_token?: string; platform_inbound_secret?: string } = {}) {
  // platform_auth.py: the cached token (/configs/.auth_token).
  let token: string | undefined = configs.auth_token;
  let inboundSecret: string | undefined = configs.platform_inbound_secret;
  const authHeaders = () => ({ token, headers: { Origin: PLATFORM_URL } });
  /** platform_auth.py self_source_headers(src): auth_headers plus X-Workspace-ID. */
  const selfSourceHeaders = () => ({ token, headers: { Origin: PLATFORM_URL, 'X-Workspace-ID': workspaceId } });
  const startTime = Date.now();

  return {
    get token() {
      return token;
    },
    get inboundSecret() {
      return inboundSecret;
    },
    /**
     * main.py:341-380 (RT1 molecule_runtime/main.py:213-222): {id, url, agent_card}, no delivery_mode
     * (push implied). Only an exact 200 is parsed: auth_token and platform_inbound_secret are persisted.
     */
    async register(url: string) {
      const agentCard = {
        name: 'langgraph-agent',
        description: 'LangGraph workspace agent',
        version: '1.0.0',
        url,
        skills: [],
        capabilities: { streaming: false, pushNotifications: false },
        configuration_status: 'ready',
      };
      const res = await callJson('POST', '/registry/register', { ...authHeaders(), body: { id: workspaceId, url, agent_card: agentCard } });
      if (res.status === 200) {
        if (res.body.auth_token) token = res.body.auth_token;
        if (res.body.platform_inbound_secret) inboundSecret = res.body.platform_inbound_secret;
      }
      return res;
    },
    /**
     * heartbeat.py:217-330: the full field set, then _runtime_state_payload() (only while wedged:
     * runtime_state + the wedge reason as sample_error) and _runtime_metadata_payload()
     * (adapter_base.py RuntimeCapabilities.to_dict + idle_timeout_seconds). The response is read only
     * for platform_inbound_secret (_persist_inbound_secret_from_heartbeat); the status is not checked.
     */
    async heartbeat(overrides: Record<string, unknown> = {}) {
      const body = {
        workspace_id: workspaceId,
        error_rate: 0.0,
        sample_error: '',
        active_tasks: 0,
        current_task: '',
        uptime_seconds: Math.floor((Date.now() - startTime) / 1000),
        runtime_metadata: {
          capabilities: { heartbeat: false, scheduler: false, session: false, status_mgmt: false, retry: false, activity_decoration: false, channel_dispatch: false },
          idle_timeout_seconds: 900,
        },
        ...overrides,
      };
      const res = await callJson('POST', '/registry/heartbeat', { ...authHeaders(), body });
      if (res.body && typeof res.body === 'object' && res.body.platform_inbound_secret) inboundSecret = res.body.platform_inbound_secret;
      return res;
    },
    /** a2a_tools_identity.py:160-185 (update_agent_card tool): own bearer; on 200 reads `status` (default "updated"). */
    async updateCard(card: Record<string, unknown>) {
      const res = await callJson('POST', '/registry/update-card', { ...authHeaders(), body: { workspace_id: workspaceId, agent_card: card } });
      return res.status === 200 ? { success: true, status: res.body.status ?? 'updated' } : { success: false, status_code: res.status, error: res.body?.error };
    },
    /** watcher.py:76-89 (identical in RT1-RT3): no headers at all; the response is ignored. */
    watcherUpdateCard: (card: Record<string, unknown>) => call('POST', '/registry/update-card', { body: { workspace_id: workspaceId, agent_card: card } }),
    /** a2a_client.py:412-437 discover_peer: X-Workspace-ID + auth_headers; 200 → the JSON, anything else → None. */
    async discoverPeer(peerId: string) {
      const res = await callJson('GET', `/registry/discover/${peerId}`, { token, headers: { 'X-Workspace-ID': workspaceId, Origin: PLATFORM_URL } });
      return res.status === 200 ? (res.body as { url?: string; name?: string; status?: string }) : null;
    },
    /**
     * a2a_client.py:529-690 send_a2a_message (RT3 posts to {PLATFORM_URL}/workspaces/{peer}/a2a; RT1/RT2
     * post the same body to discover's `url`, which is that proxy URL). The HTTP status is not checked;
     * a2a_response.parse reads result.parts[0].text.
     */
    async sendA2A(url: string, message: string) {
      expect(url.startsWith(`${PLATFORM_URL}/`)).toBe(true);
      const res = await callJson('POST', url.slice(PLATFORM_URL.length), {
        ...selfSourceHeaders(),
        body: {
          jsonrpc: '2.0',
          id: crypto.randomUUID(),
          method: 'message/send',
          params: { message: { role: 'user', messageId: crypto.randomUUID(), parts: [{ kind: 'text', text: message }] } },
        },
      });
      return res.body?.result?.parts?.[0]?.text as string | undefined;
    },
    /** a2a_tools_messaging.py:148-212 tool_send_message_to_user: {message}; success is exactly 200. */
    async sendMessageToUser(message: string) {
      const res = await call('POST', `/workspaces/${workspaceId}/notify`, { ...authHeaders(), body: { message } });
      return res.status === 200 ? 'Message sent to user' : `Error: platform returned ${res.status}`;
    },
    /**
     * a2a_tools_delegation.py:349-406 tool_delegate_task_async: idempotency key
     * sha256(f"{src}:{target}:{task}")[:32]; anything but exactly 202 is an error; reads delegation_id.
     */
    async delegateAsync(targetId: string, task: string) {
      const idempotencyKey = (await sha256Hex(`${workspaceId}:${targetId}:${task}`)).slice(0, 32);
      const res = await callJson('POST', `/workspaces/${workspaceId}/delegate`, { ...authHeaders(), body: { target_id: targetId, task, idempotency_key: idempotencyKey } });
      return { status: res.status, delegation_id: res.body?.delegation_id ?? '' };
    },
    /**
     * a2a_tools_delegation.py:69-202 _delegate_sync_via_polling: GET /workspaces/:src/delegations (non-200
     * skipped), a list; the first row with the delegation_id whose status.lower() is completed or failed.
     */
    awaitDelegation: (delegationId: string) =>
      waitFor(async () => {
        const poll = await callJson('GET', `/workspaces/${workspaceId}/delegations`, authHeaders());
        if (poll.status !== 200 || !Array.isArray(poll.body)) return undefined;
        return poll.body.find((r: any) => r.delegation_id === delegationId && ['completed', 'failed'].includes(String(r.status ?? '').toLowerCase()));
      }, 10_000),
    /** a2a_client.py:757-790 get_workspace_info: 200 → the JSON; 410 reads id, removed_at, hint. */
    getWorkspaceInfo: () => callJson('GET', `/workspaces/${workspaceId}`, authHeaders()),
  };
}

const statusOf = async (id: string) => (await callJson('GET', `/workspaces/${id}`, { token: ADMIN })).body.status as string;
const tag = () => crypto.randomUUID().slice(0, 8);

/** An operator's team: a parent, the runtime's NON-external workspace under it, and a push sibling that answers "done: <text>". */
async function team() {
  const parent = await createWorkspace({ external: true, delivery_mode: 'poll' });
  const created = await createWorkspace({ runtime: 'langgraph', parent_id: parent.id });
  const siblingAgent = `rt-sibling-${tag()}`;
  const sibling = await registeredAgent({ url: loopback(`/agent/reply/${siblingAgent}`), parentId: parent.id });
  const [row] = await sql<{ name: string }>('SELECT name FROM workspaces WHERE id = $1', [sibling.id]);
  return { parent, created, sibling, siblingAgent, siblingName: row!.name };
}

describe('workspace runtime: boot → heartbeat → card → discover → A2A → notify → delegate', () => {
  it('runs a provisioned workspace end to end with the fields each call reads', async () => {
    const { created, sibling, siblingAgent, siblingName } = await team();
    expect(created.body.status).toBe('provisioning');
    expect(created.token).toBeUndefined(); // the provisioner hands the container its token, not the operator
    // The provisioner started the container with /configs/.auth_token and .platform_inbound_secret.
    const configs = await waitForStart(created.id);
    const rt = runtime(created.id, configs);
    const agentUrl = loopback(`/agent/echo/rt-${tag()}`);

    // First boot: the provisioned bearer; no bootstrap token on top of it.
    const first = await rt.register(agentUrl);
    expect(first.status).toBe(200);
    expect(first.body.auth_token).toBeUndefined();
    expect(first.body.platform_inbound_secret).toBe(configs.platform_inbound_secret);
    expect(rt.token).toBe(configs.auth_token);
    expect(await statusOf(created.id)).toBe('online');

    // Second boot (container restart): the same bearer; no second token.
    const second = await rt.register(agentUrl);
    expect(second.status).toBe(200);
    expect(second.body.auth_token).toBeUndefined();
    expect(second.body.platform_inbound_secret).toBe(first.body.platform_inbound_secret);
    expect(rt.token).toBe(configs.auth_token);

    // Heartbeats: healthy, wedged (degraded), healthy again as the runtime sends it (no runtime_state
    // key at all once the wedge clears), wedged again, then runtime_state "" (Go's recovery condition).
    const healthy = await rt.heartbeat();
    expect(healthy.body.platform_inbound_secret).toBe(first.body.platform_inbound_secret);
    expect(await statusOf(created.id)).toBe('online');
    await rt.heartbeat({ runtime_state: 'wedged', sample_error: 'claude SDK wedged: restart the workspace' });
    expect(await statusOf(created.id)).toBe('degraded');
    await rt.heartbeat();
    expect(await statusOf(created.id)).toBe('online');
    await rt.heartbeat({ runtime_state: 'wedged', sample_error: 'claude SDK wedged: restart the workspace' });
    expect(await statusOf(created.id)).toBe('degraded');
    const recovered = await rt.heartbeat({ runtime_state: '' });
    expect(recovered.body.platform_inbound_secret).toBe(first.body.platform_inbound_secret);
    expect(await statusOf(created.id)).toBe('online');
    expect(rt.inboundSecret).toBe(first.body.platform_inbound_secret);

    // update-card: the tool (own bearer) reads `status`; the watcher (no headers) is refused and writes nothing.
    const card = { name: 'langgraph-agent', description: 'now with a research skill', version: '1.1.0', url: agentUrl, skills: [{ id: 'research', name: 'research', description: 'web research', tags: [] }] };
    expect(await rt.updateCard(card)).toEqual({ success: true, status: 'updated' });
    expect((await rt.watcherUpdateCard({ name: 'from-the-watcher' })).status).toBe(401);
    const [stored] = await sql('SELECT agent_card FROM workspaces WHERE id = $1', [created.id]);
    expect(stored.agent_card).toEqual(card);

    // discover: RT3 reads status (not "offline") and name, RT1/RT2 POST to url.
    const peer = await rt.discoverPeer(sibling.id);
    expect(peer).not.toBeNull();
    expect(peer!.status).toBe('online');
    expect(peer!.name).toBe(siblingName);
    expect(peer!.url).toBe(`${PLATFORM_URL}/workspaces/${sibling.id}/a2a`);

    const answer = await rt.sendA2A(peer!.url!, 'collect the logs');
    expect(answer).toBe('done: collect the logs');
    const [delivered] = await received(siblingAgent);
    expect(JSON.parse(delivered!.body).params.message.parts).toEqual([{ kind: 'text', text: 'collect the logs' }]);

    expect(await rt.sendMessageToUser('Logs collected.')).toBe('Message sent to user');

    const task = 'summarise the logs';
    const delegated = await rt.delegateAsync(sibling.id, task);
    expect(delegated.status).toBe(202);
    expect(delegated.delegation_id).not.toBe('');
    const terminal = await rt.awaitDelegation(delegated.delegation_id);
    expect(terminal.status).toBe('completed');
    expect(terminal.response_preview).toBe(`done: ${task}`);
    expect(terminal.error_detail ?? null).toBeNull();
    // A restarted agent fires the same delegation (same key): still exactly 202, the same delegation.
    const again = await rt.delegateAsync(sibling.id, task);
    expect(again).toEqual({ status: 202, delegation_id: delegated.delegation_id });
  });

  it('removed by the operator: register with the revoked bearer is 410 with a hint, and so is get_workspace_info', async () => {
    const { created } = await team();
    const rt = runtime(created.id, await waitForStart(created.id));
    expect((await rt.register(loopback(`/agent/echo/rt-${tag()}`))).status).toBe(200);
    expect((await call('DELETE', `/workspaces/${created.id}`, { token: ADMIN })).status).toBe(200);

    // main.py prints any non-200 and boots on; the body tells the operator what to do.
    const reboot = await rt.register(loopback(`/agent/echo/rt-${tag()}`));
    expect(reboot.status).toBe(410);
    expect(typeof reboot.body.hint).toBe('string');
    expect(reboot.body.auth_token).toBeUndefined();

    const info = await rt.getWorkspaceInfo();
    expect(info.status).toBe(410);
    expect(info.body.id).toBe(created.id);
    expect(typeof info.body.hint).toBe('string');
    expect(Number.isNaN(Date.parse(info.body.removed_at))).toBe(false);
  });
});
