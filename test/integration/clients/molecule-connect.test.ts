// Replays `molecule connect` (Molecule-AI/molecule-cli internal/connect/client.go and connect.go:
// register, runHeartbeatLoop, runPollLoop, dispatchOne) call for call. The CLI treats ANY 4xx as
// permanent and stops that loop for good, so every call here must be 2xx (or the 410 it handles).
import { describe, expect, it } from 'vitest';
import { ADMIN, call, callJson, createWorkspace, registeredAgent } from '../../support/api';

type ActivityRow = { id: string; source_id: string | null; method: string | null; request_body?: { params?: { message?: { parts?: { type?: string; text?: string }[] } } }; created_at: string };

/** backends (exec.go, mock.go): only parts with type == "text" are read. */
const textOf = (row: ActivityRow) => (row.request_body?.params?.message?.parts ?? []).filter((p) => p.type === 'text').map((p) => p.text).join('');

function cli(workspaceId: string, token: string) {
  let lastSinceId = '';
  const dispatched: { text: string; source: string | null }[] = [];
  return {
    dispatched,
    register: () =>
      call('POST', '/registry/register', {
        token,
        body: { id: workspaceId, agent_card: { name: 'molecule-connect', description: 'molecule connect (CLI bridge)', version: '0.1.0' }, delivery_mode: 'poll' },
      }),
    heartbeat: () => call('POST', '/registry/heartbeat', { token, body: { workspace_id: workspaceId, runtime_state: 'ok', uptime_seconds: 0 } }),
    /** One runPollLoop tick: Activity(ctx, LastSinceID, 50); rows dispatched in order, each becoming the cursor. */
    async pollOnce(reply?: (row: ActivityRow) => Promise<Response>) {
      const q = `type=a2a_receive${lastSinceId ? `&since_id=${lastSinceId}` : ''}&limit=50`;
      const res = await callJson<ActivityRow[]>('GET', `/workspaces/${workspaceId}/activity?${q}`, { token });
      if (res.status === 410) {
        lastSinceId = '';
        return res;
      }
      expect(res.status).toBe(200);
      for (const row of res.body) {
        expect(typeof row.created_at).toBe('string'); // decoded into a Go string
        dispatched.push({ text: textOf(row), source: row.source_id });
        if (reply && row.source_id) expect((await reply(row)).status).toBeLessThan(300);
        lastSinceId = row.id;
      }
      return res;
    },
    /** The reply to a peer (connect.go): role assistant, `type` parts, no messageId, bearer only. */
    replyTo: (row: ActivityRow, text: string) =>
      call('POST', `/workspaces/${row.source_id}/a2a`, {
        token,
        body: { jsonrpc: '2.0', id: row.id, method: 'message/send', params: { message: { role: 'assistant', parts: [{ type: 'text', text }] } } },
      }),
  };
}

describe('molecule connect: register → heartbeat → poll loop → reply', () => {
  it('heartbeats with runtime_state "ok", dispatches each message once in order, replies to peers', async () => {
    const parent = await registeredAgent({ mode: 'poll' });
    const ws = await createWorkspace({ external: true, delivery_mode: 'poll', parent_id: parent.id });
    const bridge = cli(ws.id, ws.token!);
    expect((await bridge.register()).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await bridge.heartbeat()).status).toBe(200);

    const peer = await registeredAgent({ mode: 'poll', parentId: parent.id });
    for (const text of ['a', 'b']) {
      await call('POST', `/workspaces/${ws.id}/a2a`, {
        token: peer.token,
        body: { jsonrpc: '2.0', id: 1, method: 'message/send', params: { message: { role: 'user', parts: [{ kind: 'text', text }] } } },
      });
    }
    await call('POST', `/workspaces/${ws.id}/a2a`, { token: ADMIN, body: { method: 'message/send', params: { message: { role: 'user', parts: [{ kind: 'text', text: 'c' }] } } } });

    await bridge.pollOnce((row) => bridge.replyTo(row, `re: ${textOf(row)}`));
    await bridge.pollOnce();
    expect(bridge.dispatched).toEqual([
      { text: 'a', source: peer.id },
      { text: 'b', source: peer.id },
      { text: 'c', source: null },
    ]);
    const peerFeed = await callJson('GET', `/workspaces/${peer.id}/activity?type=a2a_receive&limit=10`, { token: peer.token });
    expect(peerFeed.body.map((r: ActivityRow) => textOf(r))).toEqual(['re: a', 're: b']);
  });

  it('a fresh state file (no cursor) after traffic still yields each message once', async () => {
    const ws = await createWorkspace({ external: true, delivery_mode: 'poll' });
    const first = cli(ws.id, ws.token!);
    await first.register();
    for (const text of ['1', '2', '3']) await call('POST', `/workspaces/${ws.id}/a2a`, { token: ADMIN, body: { method: 'message/send', params: { message: { parts: [{ kind: 'text', text }] } } } });
    await first.pollOnce();
    await first.pollOnce();
    await first.pollOnce();
    expect(first.dispatched.map((d) => d.text)).toEqual(['1', '2', '3']);
  });
});
