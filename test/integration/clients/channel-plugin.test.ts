// Replays the Claude Code channel plugin (Molecule-AI/molecule-mcp-claude-channel v0.4, server.ts and
// heartbeat.ts) call for call, asserting exactly the fields it reads.
import { describe, expect, it } from 'vitest';
import { ADMIN, call, callJson, createWorkspace, loopback, registeredAgent, sql, waitFor } from '../../support/api';

const ORIGIN = 'http://edge.test';
const ZERO = '00000000-0000-0000-0000-000000000000';

type Row = { id: string; method: string | null; source_id: string | null; summary: string | null; request_body?: any };

/** extract-text.ts: text parts (kind or type 'text') of params.message.parts | params.parts | parts, else summary. */
function extractText(row: Row): string {
  const b = row.request_body;
  const parts: any[] = b?.params?.message?.parts ?? b?.params?.parts ?? b?.parts ?? [];
  const texts = parts.filter((p) => p?.kind === 'text' || p?.type === 'text').map((p) => p.text);
  return texts.length > 0 ? texts.join('\n') : (row.summary ?? '');
}

/** The plugin's per-workspace poll state and loop (pollWorkspace, server.ts). */
function plugin(workspaceId: string, token: string) {
  const headers = { Origin: ORIGIN };
  let cursor: string | undefined;
  const emitted: { text: string; source: 'canvas_user' | 'peer_agent'; source_id: string | null }[] = [];
  return {
    emitted,
    get cursor() {
      return cursor;
    },
    /** Cursor probe (CH-1): 410 means "the platform supports since_id". */
    probe: () => call('GET', `/workspaces/${workspaceId}/activity?type=a2a_receive&since_id=${ZERO}&limit=1`, { token, headers }),
    /** registerAsPoll (CH-3): reads delivery_mode only. */
    register: () => callJson('POST', '/registry/register', { token, headers, body: { id: workspaceId, delivery_mode: 'poll', agent_card: { name: 'Claude Code (channel)', description: 'Local Claude Code session' } } }),
    /** heartbeat.ts (CH-4): the body is only the id; nothing is read back. */
    heartbeat: () => call('POST', '/registry/heartbeat', { token, headers, body: { workspace_id: workspaceId } }),
    /** One poll tick (CH-2): cold start with since_secs, then since_id; the LAST row becomes the cursor. */
    async poll(windowSecs = 30) {
      const q = `type=a2a_receive&limit=100&${cursor ? `since_id=${cursor}` : `since_secs=${windowSecs}`}`;
      const res = await callJson<Row[]>('GET', `/workspaces/${workspaceId}/activity?${q}`, { token, headers });
      if (res.status === 410) {
        cursor = undefined;
        return res;
      }
      expect(res.status).toBe(200);
      expect(Array.isArray(res.body)).toBe(true);
      for (const act of res.body) {
        if (act.method === 'notify') continue; // shouldEmitActivity
        emitted.push({ text: extractText(act), source: act.source_id ? 'peer_agent' : 'canvas_user', source_id: act.source_id });
      }
      if (res.body.length > 0) cursor = res.body[res.body.length - 1]!.id;
      return res;
    },
    /** reply_to_workspace to a peer (CH-5): `type` parts, no role, X-Source-Workspace-Id, no X-Workspace-ID. */
    replyToPeer: (peerId: string, text: string) =>
      call('POST', `/workspaces/${peerId}/a2a`, {
        token,
        headers: { ...headers, 'X-Source-Workspace-Id': workspaceId },
        body: { jsonrpc: '2.0', id: crypto.randomUUID(), method: 'message/send', params: { message: { messageId: crypto.randomUUID(), parts: [{ type: 'text', text }] } } },
      }),
  };
}

const canvasSays = (workspaceId: string, text: string) =>
  call('POST', `/workspaces/${workspaceId}/a2a`, { token: ADMIN, body: { jsonrpc: '2.0', id: 1, method: 'message/send', params: { message: { role: 'user', parts: [{ kind: 'text', text }] } } } });

describe('channel plugin: probe → register(poll) → heartbeat → cold start → steady polling → reply', () => {
  it('delivers every message once, in order, across cold start and steady state', async () => {
    const created = await createWorkspace({ external: true, delivery_mode: 'poll' });
    const ch = plugin(created.id, created.token!);

    expect((await ch.probe()).status).toBe(410);
    const reg = await ch.register();
    expect(reg.status).toBe(200);
    expect(reg.body.delivery_mode).toBe('poll');
    expect((await ch.heartbeat()).ok).toBe(true);

    for (const text of ['one', 'two', 'three']) expect((await canvasSays(created.id, text)).status).toBe(200);
    await ch.poll();
    expect(ch.emitted.map((e) => e.text)).toEqual(['one', 'two', 'three']);
    expect(ch.emitted.every((e) => e.source === 'canvas_user')).toBe(true);

    await ch.poll();
    expect(ch.emitted).toHaveLength(3); // nothing twice
    await canvasSays(created.id, 'four');
    await ch.poll();
    await ch.poll();
    expect(ch.emitted.map((e) => e.text)).toEqual(['one', 'two', 'three', 'four']);
  });

  it('MOLECULE_POLL_WINDOW_SECS=0 still gets a cursor (the newest row), then every later message', async () => {
    const created = await createWorkspace({ external: true, delivery_mode: 'poll' });
    const ch = plugin(created.id, created.token!);
    await ch.register();
    await canvasSays(created.id, 'old');
    await canvasSays(created.id, 'latest');
    await ch.poll(0);
    expect(ch.cursor).toBeDefined();
    await canvasSays(created.id, 'after');
    await ch.poll(0);
    expect(ch.emitted.map((e) => e.text)).toEqual(['latest', 'after']);
  });

  it('a reply to a peer lands in the peer feed from this workspace; a 410 cursor re-seeds', async () => {
    const parent = await registeredAgent({ mode: 'poll' });
    const created = await createWorkspace({ external: true, delivery_mode: 'poll', parent_id: parent.id });
    const ch = plugin(created.id, created.token!);
    await ch.register();
    const peer = await registeredAgent({ mode: 'poll', parentId: parent.id });
    const res = await ch.replyToPeer(peer.id, 'done');
    expect(res.ok).toBe(true);
    const peerFeed = await callJson<Row[]>('GET', `/workspaces/${peer.id}/activity?type=a2a_receive&limit=100`, { token: peer.token });
    expect(peerFeed.body.map((r) => [r.source_id, extractText(r)])).toEqual([[created.id, 'done']]);

    // A pruned cursor: 410, the plugin drops it and the next tick cold-starts.
    await canvasSays(created.id, 'x');
    await ch.poll();
    await sql('DELETE FROM activity_logs WHERE id = $1', [ch.cursor]);
    expect((await ch.poll()).status).toBe(410);
    expect(ch.cursor).toBeUndefined();
  });

  it('reply_to_workspace to the canvas, delegate_task (sync) and delegate_task_async + check_task_status', async () => {
    const parent = await registeredAgent({ mode: 'poll' });
    const created = await createWorkspace({ external: true, delivery_mode: 'poll', parent_id: parent.id });
    const ch = plugin(created.id, created.token!);
    await ch.register();
    const headers = { Origin: ORIGIN };
    // CH-5 without peer_id: POST /notify {message}; only resp.ok is read.
    expect((await call('POST', `/workspaces/${created.id}/notify`, { token: created.token, headers, body: { message: 'on it' } })).ok).toBe(true);
    // ...and the plugin's own poll does not get its reply back as input.
    await ch.poll();
    expect(ch.emitted).toEqual([]);

    const name = crypto.randomUUID().slice(0, 8);
    const peer = await registeredAgent({ url: loopback(`/agent/reply/${name}`), parentId: parent.id });
    // CH-6 delegate_task: the same envelope as a reply, to the peer's /a2a; the whole JSON goes to Claude.
    const sync = await callJson('POST', `/workspaces/${peer.id}/a2a`, {
      token: created.token,
      headers: { ...headers, 'X-Source-Workspace-Id': created.id },
      body: { jsonrpc: '2.0', id: crypto.randomUUID(), method: 'message/send', params: { message: { messageId: crypto.randomUUID(), parts: [{ type: 'text', text: 'summarise' }] } } },
    });
    expect(sync.status).toBe(200);
    expect(sync.body.result.parts[0].text).toBe('done: summarise');

    // CH-7 delegate_task_async: {target_id, task, idempotency_key}; 202 or ok, reads delegation_id.
    const key = crypto.randomUUID().replace(/-/g, '');
    const async_ = await callJson('POST', `/workspaces/${created.id}/delegate`, { token: created.token, headers, body: { target_id: peer.id, task: 'audit', idempotency_key: key } });
    expect(async_.status).toBe(202);
    const delegationId = async_.body.delegation_id as string;
    // CH-8 check_task_status: a bare array, find by delegation_id.
    const done = await waitFor(async () => {
      const all = await callJson<{ delegation_id: string; status: string; response_preview: string | null }[]>('GET', `/workspaces/${created.id}/delegations`, { token: created.token, headers });
      const found = all.body.find((d) => d.delegation_id === delegationId);
      return found?.status === 'completed' && found;
    }, 10_000);
    expect(done.response_preview).toBe('done: audit');
  });

  it('get_workspace_info on a removed workspace: 410 with id, removed_at and hint, to its own token', async () => {
    const created = await createWorkspace({ external: true, delivery_mode: 'poll' });
    const ch = plugin(created.id, created.token!);
    await ch.register();
    expect((await call('DELETE', `/workspaces/${created.id}`, { token: ADMIN })).status).toBe(200);
    // server.ts get_workspace_info (CH-10): parses {id?, removed_at?, hint?} from the 410.
    const res = await callJson('GET', `/workspaces/${created.id}`, { token: created.token, headers: { Origin: ORIGIN } });
    expect(res.status).toBe(410);
    expect(res.body.id).toBe(created.id);
    expect(typeof res.body.hint).toBe('string');
    expect(Number.isNaN(Date.parse(res.body.removed_at))).toBe(false);
  });
});
