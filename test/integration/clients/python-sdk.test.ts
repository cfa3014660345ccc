// Replays the Python SDK (Molecule-AI/molecule-sdk-python @ 9622f0b, molecule_agent/client.py
// RemoteAgentClient, molecule_agent/inbound.py PollDelivery and _parse_activity_row,
// molecule_agent/__main__.py `connect --token`) call for call, asserting exactly the fields it reads.
// With --token the token is saved and register() is skipped (__main__.py:126-139).
import { describe, expect, it } from 'vitest';
import { ADMIN, BASE, call, callJson, createWorkspace, loopback, received, registeredAgent, sql, waitFor } from '../../support/api';

/** --platform-url; RemoteAgentClient(origin="") defaults Origin to it (client.py:311-312). */
const PLATFORM_URL = BASE;

type InboundMessage = { activity_id: string; source: 'canvas_user' | 'peer_agent' | 'unknown'; source_id: string; text: string; peer_name: string; peer_role: string };
type Handler = (msg: InboundMessage, client: RemoteAgentClient) => string | null;

class HTTPError extends Error {}
class CursorLostError extends Error {}

/** requests' raise_for_status(). */
function raiseForStatus(res: { status: number }): void {
  if (res.status >= 400) throw new HTTPError(`HTTP ${res.status}`);
}

/** inbound.py:104-149 _parse_activity_row. */
function parseActivityRow(row: any): InboundMessage | null {
  const aid = String(row.id || '');
  if (!aid) return null;
  const data = row.data && typeof row.data === 'object' && !Array.isArray(row.data) ? row.data : {};
  const sourceKind = String(data.source || row.source || '');
  const sourceId = String(row.source_id || data.source_id || '');
  let source: InboundMessage['source'];
  if (sourceKind === 'canvas_user' || sourceKind === 'user') source = 'canvas_user';
  else if (sourceKind === 'peer_agent') source = 'peer_agent';
  else if (sourceId && sourceId !== 'user') source = 'peer_agent';
  else if (sourceId === 'user') source = 'canvas_user';
  else source = 'unknown';
  return {
    activity_id: aid,
    source,
    source_id: sourceId,
    text: String(data.text || data.message || ''),
    peer_name: String(data.peer_name || ''),
    peer_role: String(data.peer_role || ''),
  };
}

async function sha256Hex(s: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(s));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

type RemoteAgentClient = ReturnType<typeof remoteAgentClient>;

/** client.py RemoteAgentClient, after `save_token(--token)`. `_request_headers()` = bearer + Origin. */
function remoteAgentClient(workspaceId: string, token: string) {
  const startTime = Date.now();
  const headers = { Origin: PLATFORM_URL };
  const urlCache = new Map<string, string>();
  /** What fetch_inbound sent, in order (the query string). */
  const inboundQueries: string[] = [];
  /** What a real run would log: exceptions the loop and the delivery swallow. */
  const logged: string[] = [];

  const client = {
    workspaceId,
    inboundQueries,
    logged,
    /** client.py:568-595: the six fields, raise_for_status(). */
    async heartbeat(currentTask = '', activeTasks = 0) {
      const res = await call('POST', '/registry/heartbeat', {
        token,
        headers,
        body: { workspace_id: workspaceId, current_task: currentTask, active_tasks: activeTasks, error_rate: 0.0, sample_error: '', uptime_seconds: Math.floor((Date.now() - startTime) / 1000) },
      });
      raiseForStatus(res);
    },
    /** client.py:752-843: type, limit, since_id?; 410 → CursorLostError; a list (or {items}) parsed row by row. */
    async fetchInbound(sinceId: string | null, limit = 100, type = 'a2a_receive') {
      const params = new URLSearchParams({ type, limit: String(limit) });
      if (sinceId) params.set('since_id', sinceId);
      inboundQueries.push(params.toString());
      const res = await callJson('GET', `/workspaces/${workspaceId}/activity?${params}`, { token, headers });
      if (res.status === 410) throw new CursorLostError(`cursor ${sinceId} no longer valid`);
      raiseForStatus(res);
      let rows: unknown = res.body ?? [];
      if (!Array.isArray(rows)) rows = rows && typeof rows === 'object' ? ((rows as { items?: unknown[] }).items ?? []) : [];
      return (rows as unknown[]).flatMap((row) => (row && typeof row === 'object' ? [parseActivityRow(row)].filter((m): m is InboundMessage => m !== null) : []));
    },
    /** client.py:846-920: canvas_user → /notify {message}; peer_agent → the peer's /a2a, role agent, kind parts, both caller headers. */
    async reply(message: InboundMessage, text: string) {
      if (!text.trim()) throw new Error('reply text must be non-empty');
      if (message.source === 'canvas_user') {
        raiseForStatus(await call('POST', `/workspaces/${workspaceId}/notify`, { token, headers, body: { message: text } }));
        return;
      }
      if (message.source === 'peer_agent') {
        if (!message.source_id) throw new Error('peer_agent inbound message has no source_id');
        const res = await call('POST', `/workspaces/${message.source_id}/a2a`, {
          token,
          headers: { ...headers, 'X-Source-Workspace-Id': workspaceId, 'X-Workspace-ID': workspaceId },
          body: { jsonrpc: '2.0', id: crypto.randomUUID(), method: 'message/send', params: { message: { role: 'agent', messageId: crypto.randomUUID(), parts: [{ kind: 'text', text }] } } },
        });
        raiseForStatus(res);
        return;
      }
      throw new Error(`cannot auto-route reply for source=${message.source}`);
    },
    /** client.py:540-566: ANY 404 → removed/deleted; else raise_for_status, reads status, paused, deleted. */
    async pollState() {
      const res = await callJson('GET', `/workspaces/${workspaceId}/state`, { token, headers });
      if (res.status === 404) return { status: 'removed', paused: false, deleted: true, raw: res };
      raiseForStatus(res);
      return { status: String(res.body.status ?? 'unknown'), paused: Boolean(res.body.paused ?? false), deleted: Boolean(res.body.deleted ?? false), raw: res };
    },
    /** client.py:525-538: raise_for_status(), then `resp.json() or {}`, a flat map. */
    async pullSecrets() {
      const res = await callJson('GET', `/workspaces/${workspaceId}/secrets/values`, { token, headers });
      raiseForStatus(res);
      return (res.body || {}) as Record<string, string>;
    },
    /** client.py:642-677: X-Workspace-ID; 404 → None; reads url, kept only if http(s). */
    async discoverPeer(targetId: string) {
      const cached = urlCache.get(targetId);
      if (cached) return cached;
      const res = await callJson('GET', `/registry/discover/${targetId}`, { token, headers: { ...headers, 'X-Workspace-ID': workspaceId } });
      if (res.status === 404) return null;
      raiseForStatus(res);
      const url = String((res.body || {}).url ?? '');
      if (/^https?:\/\//.test(url)) {
        urlCache.set(targetId, url);
        return url;
      }
      return null;
    },
    /** client.py:684-749: POST the discovered url directly; on any exception, the proxy path. Returns the JSON. */
    async callPeer(targetId: string, message: string) {
      const body = { jsonrpc: '2.0', id: crypto.randomUUID(), method: 'message/send', params: { message: { role: 'user', messageId: crypto.randomUUID(), parts: [{ kind: 'text', text: message }] } } };
      const peerHeaders = { ...headers, 'X-Workspace-ID': workspaceId };
      const url = await client.discoverPeer(targetId);
      if (url) {
        try {
          // The test Worker is reachable at PLATFORM_URL only; anything else would be a connection error.
          if (!url.startsWith(`${PLATFORM_URL}/`)) throw new Error('unreachable');
          const res = await callJson('POST', url.slice(PLATFORM_URL.length), { token, headers: peerHeaders, body });
          raiseForStatus(res);
          return { via: 'direct' as const, json: res.body };
        } catch (err) {
          logged.push(`direct A2A failed: ${err}`);
          urlCache.delete(targetId);
        }
      }
      const res = await callJson('POST', `/workspaces/${targetId}/a2a`, { token, headers: peerHeaders, body });
      raiseForStatus(res);
      return { via: 'proxy' as const, json: res.body };
    },
    /**
     * client.py:1027-1074: POST /workspaces/{TARGET}/delegate with X-Workspace-ID: self, no target_id;
     * the key is make_idempotency_key(task) = sha256(f"{task}:{minute}") (client.py:69-90).
     */
    async delegate(task: string, targetId: string) {
      const minute = Math.floor(Date.now() / 1000 / 60) * 60;
      const res = await callJson('POST', `/workspaces/${targetId}/delegate`, {
        token,
        headers: { ...headers, 'X-Workspace-ID': workspaceId },
        body: { task, idempotency_key: await sha256Hex(`${task}:${minute}`) },
      });
      raiseForStatus(res);
      return { status: res.status, json: res.body };
    },
  };
  return client;
}

/** inbound.py:191-304 PollDelivery: the cursor lives in memory (no cursor_file); the LAST dispatched row becomes it. */
function pollDelivery(client: RemoteAgentClient) {
  let cursor: string | null = null;
  return {
    get cursor() {
      return cursor;
    },
    async runOnce(handler: Handler) {
      let batch: InboundMessage[];
      try {
        batch = await client.fetchInbound(cursor);
      } catch (err) {
        if (!(err instanceof CursorLostError)) throw err;
        cursor = null;
        return 0;
      }
      for (const msg of batch) {
        // _dispatch: a returned string is sent with reply(); failures are logged, the cursor moves on.
        try {
          const replyText = handler(msg, client);
          if (replyText) await client.reply(msg, replyText).catch((err) => client.logged.push(`reply send failed: ${err}`));
        } catch (err) {
          client.logged.push(`handler raised: ${err}`);
        }
        cursor = msg.activity_id;
      }
      return batch.length;
    },
  };
}

/** client.py:922-1020 run_agent_loop: heartbeat, run_once, poll_state (each failure logged); stops when paused or deleted. */
async function runAgentLoop(client: RemoteAgentClient, handler: Handler, delivery: ReturnType<typeof pollDelivery>, maxIterations?: number) {
  for (let i = 0; ; i++) {
    if (maxIterations !== undefined && i >= maxIterations) return 'max_iterations';
    await client.heartbeat().catch((err) => client.logged.push(`heartbeat failed: ${err}`));
    await delivery.runOnce(handler).catch((err) => client.logged.push(`run_once raised: ${err}`));
    const state = await client.pollState().catch((err) => (client.logged.push(`state poll failed: ${err}`), null));
    if (state && (state.paused || state.deleted)) return state.status;
  }
}

const a2aText = (text: string) => ({ jsonrpc: '2.0', id: crypto.randomUUID(), method: 'message/send', params: { message: { role: 'user', messageId: crypto.randomUUID(), parts: [{ kind: 'text', text }] } } });
const canvasSays = (workspaceId: string, text: string) => call('POST', `/workspaces/${workspaceId}/a2a`, { token: ADMIN, body: a2aText(text) });
const peerSays = (from: { id: string; token: string }, workspaceId: string, text: string) =>
  call('POST', `/workspaces/${workspaceId}/a2a`, { token: from.token, headers: { 'X-Workspace-ID': from.id }, body: a2aText(text) });

/** The operator's setup: a parent, the SDK's external poll workspace (with a secret), and a push sibling answering "done: <text>". */
async function family() {
  const parent = await createWorkspace({ external: true, delivery_mode: 'poll' });
  const ws = await createWorkspace({ external: true, delivery_mode: 'poll', parent_id: parent.id, secrets: { API_KEY: 'k1' } });
  const siblingAgent = `sdk-sibling-${crypto.randomUUID().slice(0, 8)}`;
  const sibling = await registeredAgent({ url: loopback(`/agent/reply/${siblingAgent}`), parentId: parent.id });
  const [row] = await sql<{ name: string }>('SELECT name FROM workspaces WHERE id = $1', [sibling.id]);
  return { parent, ws, sibling, siblingAgent, siblingName: row!.name, sdk: remoteAgentClient(ws.id, ws.token!) };
}

const summary = (m: InboundMessage) => ({ source: m.source, text: m.text, source_id: m.source_id, peer_name: m.peer_name });

describe('Python SDK: connect --token → run_agent_loop (heartbeat, PollDelivery.run_once, poll_state)', () => {
  it('delivers canvas and peer messages once each, in order, across polls and a restart; replies reach both', async () => {
    const { ws, sibling, siblingAgent, siblingName, sdk } = await family();
    await canvasSays(ws.id, 'hello');
    await peerSays(sibling, ws.id, 'status?');
    await canvasSays(ws.id, 'bye');

    const seen: InboundMessage[] = [];
    const handler: Handler = (msg) => {
      seen.push(msg);
      return `re: ${msg.text}`;
    };
    const delivery = pollDelivery(sdk);
    expect(await runAgentLoop(sdk, handler, delivery, 1)).toBe('max_iterations');
    expect(sdk.logged).toEqual([]);
    expect(seen.map(summary)).toEqual([
      { source: 'canvas_user', text: 'hello', source_id: '', peer_name: '' },
      { source: 'peer_agent', text: 'status?', source_id: sibling.id, peer_name: siblingName },
      { source: 'canvas_user', text: 'bye', source_id: '', peer_name: '' },
    ]);
    expect(sdk.inboundQueries).toEqual(['type=a2a_receive&limit=100']);
    expect(delivery.cursor).toBe(seen[2]!.activity_id);

    // The replies: the canvas gets both notify messages, the peer agent its A2A message.
    const canvasFeed = await callJson('GET', `/workspaces/${ws.id}/activity?type=a2a_receive&limit=10`, { token: ADMIN });
    expect(canvasFeed.body.filter((r: any) => r.method === 'notify').map((r: any) => r.response_body.result).sort()).toEqual(['re: bye', 're: hello']);
    const atPeer = (await received(siblingAgent)).map((r) => JSON.parse(r.body).params.message);
    expect(atPeer).toEqual([expect.objectContaining({ role: 'agent', parts: [{ kind: 'text', text: 're: status?' }] })]);

    // Steady state: the cursor; the agent's own notify replies do not come back as input.
    expect(await delivery.runOnce(handler)).toBe(0);
    expect(sdk.inboundQueries[1]).toBe(`type=a2a_receive&limit=100&since_id=${seen[2]!.activity_id}`);
    await peerSays(sibling, ws.id, 'thanks');
    expect(await delivery.runOnce(handler)).toBe(1);
    expect(await delivery.runOnce(handler)).toBe(0);
    expect(seen.map((m) => m.text)).toEqual(['hello', 'status?', 'bye', 'thanks']);
    expect(seen.at(-1)!.source).toBe('peer_agent');

    // Restart without a cursor file: the fresh PollDelivery replays the recent window (by SDK design),
    // oldest first and each message once; its next poll, from the newest row, repeats none of them.
    const restarted = pollDelivery(sdk);
    const replayed: InboundMessage[] = [];
    expect(await restarted.runOnce((msg) => (replayed.push(msg), null))).toBe(4);
    expect(replayed.map(summary)).toEqual(seen.map(summary));
    expect(await restarted.runOnce((msg) => (replayed.push(msg), null))).toBe(0);
    expect(restarted.cursor).toBe(seen[3]!.activity_id);
    expect(sdk.logged).toEqual([]);
  });

  it('poll_state: live, then paused (the loop stops), then deleted: the revoked token reads 404 (the loop exits "removed")', async () => {
    const { ws, sdk } = await family();
    const delivery = pollDelivery(sdk);
    const idle: Handler = () => null;
    expect(await runAgentLoop(sdk, idle, delivery, 1)).toBe('max_iterations');
    const live = await sdk.pollState();
    expect(live.raw.status).toBe(200);
    expect({ status: live.status, paused: live.paused, deleted: live.deleted }).toEqual({ status: 'online', paused: false, deleted: false });

    // Pausing is not a route yet: the column, as an operator action would leave it.
    // The operator pauses it (POST /workspaces/:id/pause).
    expect((await callJson('POST', `/workspaces/${ws.id}/pause`, { token: ADMIN })).status).toBe(200);
    const paused = await sdk.pollState();
    expect({ status: paused.status, paused: paused.paused, deleted: paused.deleted }).toEqual({ status: 'paused', paused: true, deleted: false });
    expect(await runAgentLoop(sdk, idle, delivery)).toBe('paused');

    expect((await call('DELETE', `/workspaces/${ws.id}`, { token: ADMIN })).status).toBe(200);
    const gone = await sdk.pollState();
    expect(gone.raw.status).toBe(404);
    expect(gone.raw.body.deleted).toBe(true);
    expect(await runAgentLoop(sdk, idle, delivery)).toBe('removed');
  });

  it('pull_secrets, discover_peer (a cousin → None, a sibling → its url) and call_peer', async () => {
    const { sibling, sdk } = await family();
    const otherParent = await createWorkspace({ external: true, delivery_mode: 'poll' });
    const cousin = await registeredAgent({ mode: 'poll', parentId: otherParent.id });

    const secrets = await sdk.pullSecrets();
    expect(secrets.API_KEY).toBe('k1');
    expect(Object.values(secrets).every((v) => typeof v === 'string')).toBe(true);

    expect(await sdk.discoverPeer(cousin.id)).toBeNull();
    expect(await sdk.discoverPeer(sibling.id)).toBe(`${PLATFORM_URL}/workspaces/${sibling.id}/a2a`);

    const answer = await sdk.callPeer(sibling.id, 'ping');
    expect(answer.via).toBe('direct');
    expect(answer.json.result.parts[0].text).toBe('done: ping');
    expect(sdk.logged).toEqual([]);
  });

  it('delegate() posts to the TARGET path with X-Workspace-ID: self and gets 202 with a delegation_id', async () => {
    const { ws, sibling, sdk } = await family();
    const task = 'draft the release notes';
    const res = await sdk.delegate(task, sibling.id);
    expect(res.status).toBe(202);
    expect(typeof res.json.delegation_id).toBe('string');

    // The platform read it the way the SDK meant: from the SDK's workspace to the sibling.
    const done = await waitFor(async () => {
      const list = await callJson('GET', `/workspaces/${ws.id}/delegations`, { token: ws.token });
      const row = list.body.find((d: any) => d.delegation_id === res.json.delegation_id);
      return row?.status === 'completed' && row;
    }, 10_000);
    expect(done).toMatchObject({ source_id: ws.id, target_id: sibling.id, response_preview: `done: ${task}` });
  });
});
