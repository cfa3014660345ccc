// POST /workspaces/:id/notify — an agent's message to its canvas user (clients-contract §4.9).
// Each client call below is replayed as the client sends it, and the assertions are on what that
// client reads: CH and the SDK only check `ok`, the runtime checks `== 200` and, on 403, reads
// `error == "talk_to_user_disabled"` and `hint`.
import { describe, expect, it } from 'vitest';
import { ADMIN, BASE, call, callJson, createWorkspace, registeredAgent, sql } from '../support/api';
import { subscribeEvents } from '../support/events';

const feedCount = async (id: string) => (await sql('SELECT count(*)::int AS n FROM activity_logs WHERE workspace_id = $1', [id]))[0].n as number;
const nameOf = async (id: string) => (await sql('SELECT name FROM workspaces WHERE id = $1', [id]))[0].name as string;
const notifyRows = (id: string) =>
  sql(`SELECT activity_type, method, source_id, target_id, summary, response_body, request_body FROM activity_logs WHERE workspace_id = $1 AND method = 'notify' ORDER BY seq`, [id]);

describe('POST /workspaces/:id/notify — client calls', () => {
  it('channel plugin reply_to_workspace (no peer_id): {message} with bearer + Origin → ok; a notify row the plugin itself skips', async () => {
    // Molecule-AI/molecule-mcp-claude-channel@fb7a89c server.ts:569-647: POST /workspaces/:own/notify,
    // headers Authorization, Content-Type, Origin: PLATFORM_URL, body { message: text }; throws on !resp.ok.
    const agent = await registeredAgent({ mode: 'poll' });
    const text = 'Done: the audit is in the shared drive.';
    const res = await call('POST', `/workspaces/${agent.id}/notify`, { token: agent.token, headers: { Origin: BASE }, body: { message: text } });
    expect(res.ok).toBe(true);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'sent' });

    // The canvas reloads its chat from this row. The agent's own inbox poll leaves it out (it is the
    // agent's output, not its input; the plugin, server.ts:264-268, would drop it anyway, the CLI
    // and the SDK would not).
    const own = await callJson('GET', `/workspaces/${agent.id}/activity?type=a2a_receive&limit=100`, { token: agent.token });
    expect(own).toMatchObject({ status: 200, body: [] });
    const feed = await callJson('GET', `/workspaces/${agent.id}/activity?type=a2a_receive`, { token: ADMIN });
    expect(feed.status).toBe(200);
    const [row] = feed.body;
    expect(row).toMatchObject({
      activity_type: 'a2a_receive',
      method: 'notify',
      source_id: null,
      target_id: agent.id,
      summary: `Agent message: ${text}`,
      response_body: { result: text },
    });
    expect(row.response_body.parts).toBeUndefined();
    expect(row.request_body).toBeUndefined();
  });

  it('runtime send_message_to_user with attachments: exactly 200; the row carries file parts and AGENT_MESSAGE reaches a live canvas', async () => {
    // EnterOS-AI/enteros-core@7b40a03 workspace/a2a_tools_messaging.py:148-212 (send_message_to_user):
    // uploads first, then POST /notify {message, attachments: <files as returned by chat/uploads>};
    // success is `resp.status_code == 200`.
    const agent = await registeredAgent({ mode: 'poll' });
    const canvas = await subscribeEvents(agent.id, ADMIN);
    const attachments = [
      { uri: 'workspace:/workspace/.molecule/chat-uploads/0f1e2d3c4b5a69788796a5b4c3d2e1f0-report.pdf', name: 'report.pdf', mimeType: 'application/pdf', size: 5120 },
      { uri: `platform-pending:${agent.id}/7d1f0c2a-2b7e-4c1e-9d55-3f1a2b3c4d5e`, name: 'notes.txt', mimeType: 'text/plain', size: 42 },
      { uri: 'https://files.example.com/chart.png', name: 'chart.png' },
    ];
    const res = await callJson('POST', `/workspaces/${agent.id}/notify`, { token: agent.token, body: { message: 'See attached', attachments } });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'sent' });

    const [row] = await notifyRows(agent.id);
    expect(row.response_body).toEqual({ result: 'See attached', parts: attachments.map((file) => ({ kind: 'file', file })) });

    const event = await canvas.next((m) => m.event === 'AGENT_MESSAGE');
    expect(event.workspace_id).toBe(agent.id);
    expect(event.payload).toEqual({ message: 'See attached', workspace_id: agent.id, name: await nameOf(agent.id), attachments });
    canvas.close();
  });

  it('runtime heartbeat delegation result: the extra `type` key is ignored', async () => {
    // EnterOS-AI/enteros-core@7b40a03 workspace/heartbeat.py (delegation results):
    // POST /workspaces/:self/notify {"message": msg, "type": "delegation_result"}.
    const agent = await registeredAgent({ mode: 'poll' });
    const canvas = await subscribeEvents(agent.id, agent.token);
    const res = await callJson('POST', `/workspaces/${agent.id}/notify`, { token: agent.token, body: { message: 'Delegation finished: 3 issues found', type: 'delegation_result' } });
    expect(res.status).toBe(200);
    const event = await canvas.next((m) => m.event === 'AGENT_MESSAGE');
    expect(event.payload).toEqual({ message: 'Delegation finished: 3 issues found', workspace_id: agent.id, name: await nameOf(agent.id) });
    expect('attachments' in event.payload).toBe(false);
    const rows = await notifyRows(agent.id);
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows[0].response_body)).not.toContain('delegation_result');
    canvas.close();
  });

  it('SDK reply() to a canvas_user message: {message} with bearer → 2xx', async () => {
    // Molecule-AI/molecule-sdk-python@9622f0b molecule_agent/client.py:846-920 (reply, canvas_user):
    // POST /workspaces/:self/notify {"message": text}, then raise_for_status().
    const agent = await registeredAgent({ mode: 'poll' });
    const res = await call('POST', `/workspaces/${agent.id}/notify`, { token: agent.token, headers: { Origin: BASE }, body: { message: 'hello from the SDK' } });
    expect(res.status).toBeGreaterThanOrEqual(200);
    expect(res.status).toBeLessThan(300);
    expect((await notifyRows(agent.id))[0].summary).toBe('Agent message: hello from the SDK');
  });

  it('the summary keeps the first 80 characters (code points, never half a surrogate pair)', async () => {
    const agent = await registeredAgent({ mode: 'poll' });
    const message = '😀'.repeat(79) + 'ab' + 'c'.repeat(100);
    expect((await call('POST', `/workspaces/${agent.id}/notify`, { token: agent.token, body: { message } })).status).toBe(200);
    const [row] = await notifyRows(agent.id);
    expect(row.summary).toBe(`Agent message: ${'😀'.repeat(79)}a`);
    expect(row.response_body.result).toBe(message);
  });

  it('an operator may post on behalf of a live workspace', async () => {
    const agent = await registeredAgent({ mode: 'poll' });
    expect((await call('POST', `/workspaces/${agent.id}/notify`, { token: ADMIN, body: { message: 'maintenance at 5pm' } })).status).toBe(200);
    expect(await notifyRows(agent.id)).toHaveLength(1);
  });
});

describe('POST /workspaces/:id/notify — talk_to_user disabled', () => {
  it('403 talk_to_user_disabled with a hint pointing at delegate_task; nothing recorded or broadcast', async () => {
    // a2a_tools_messaging.py:148-212: on 403 it reads body["error"] == "talk_to_user_disabled" and shows body["hint"].
    const agent = await registeredAgent({ mode: 'poll' });
    await sql('UPDATE workspaces SET talk_to_user_enabled = false WHERE id = $1', [agent.id]);
    const canvas = await subscribeEvents(agent.id, ADMIN);
    const before = await feedCount(agent.id);
    for (const token of [agent.token, ADMIN]) {
      const res = await callJson('POST', `/workspaces/${agent.id}/notify`, { token, body: { message: 'can you hear me?' } });
      expect(res.status).toBe(403);
      expect(res.body.error).toBe('talk_to_user_disabled');
      expect(res.body.hint).toMatch(/delegate_task/);
      expect(res.body.hint).toMatch(/parent workspace/);
    }
    expect(await feedCount(agent.id)).toBe(before);
    await new Promise((r) => setTimeout(r, 300));
    expect(canvas.messages.filter((m) => m.event === 'AGENT_MESSAGE' || m.event === 'ACTIVITY_LOGGED')).toEqual([]);
    canvas.close();

    await sql('UPDATE workspaces SET talk_to_user_enabled = true WHERE id = $1', [agent.id]);
    expect((await call('POST', `/workspaces/${agent.id}/notify`, { token: agent.token, body: { message: 'back again' } })).status).toBe(200);
  });
});

describe('POST /workspaces/:id/notify — auth', () => {
  it('another workspace’s token, a missing or malformed token → 401; unknown and removed workspaces → 404 to operators; a bad id → 400', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const b = await registeredAgent({ mode: 'poll' });
    const body = { message: 'hi' };
    expect((await callJson('POST', `/workspaces/${a.id}/notify`, { token: b.token, body })).status).toBe(401);
    expect((await callJson('POST', `/workspaces/${a.id}/notify`, { body })).status).toBe(401);
    expect((await callJson('POST', `/workspaces/${a.id}/notify`, { token: 'mws_not-a-token', body })).status).toBe(401);
    expect((await callJson('POST', `/workspaces/${crypto.randomUUID()}/notify`, { token: ADMIN, body })).status).toBe(404);
    expect((await callJson('POST', '/workspaces/not-a-uuid/notify', { token: ADMIN, body })).status).toBe(400);

    const removed = await createWorkspace({ external: true, delivery_mode: 'poll' });
    expect((await call('DELETE', `/workspaces/${removed.id}`, { token: ADMIN })).status).toBe(200);
    expect((await callJson('POST', `/workspaces/${removed.id}/notify`, { token: ADMIN, body })).status).toBe(404);
    expect((await callJson('POST', `/workspaces/${removed.id}/notify`, { token: removed.token, body })).status).toBe(401);
    expect(await feedCount(a.id)).toBe(0);
    expect(await feedCount(removed.id)).toBe(0);
  });
});

describe('POST /workspaces/:id/notify — bodies', () => {
  const MARK = 'Qz9notifyMARK';

  it('bodies without a message (runtime builtin / MCP server `{type, …}` notices), bad attachments and hostile values → 400 naming the field, never the value; nothing written', async () => {
    const agent = await registeredAgent({ mode: 'poll' });
    const file = { uri: 'workspace:/workspace/.molecule/chat-uploads/a.txt', name: 'a.txt' };
    const cases: [unknown, string][] = [
      // EnterOS-AI/enteros-core@7b40a03 workspace/builtin_tools/delegation.py: _notify_completion (no `message`)
      [{ type: 'delegation_complete', task_id: MARK, target_workspace_id: crypto.randomUUID(), status: 'completed' }, 'message'],
      [{}, 'message'],
      [{ message: '' }, 'message'],
      [{ message: 123 }, 'message'],
      [{ message: null }, 'message'],
      [{ message: 'x'.repeat(65_537) }, 'message'],
      [{ message: 'hi', attachments: {} }, 'attachments'],
      [{ message: 'hi', attachments: Array.from({ length: 33 }, () => file) }, 'attachments'],
      [{ message: 'hi', attachments: [{ uri: '', name: 'a' }] }, 'attachments.0.uri'],
      [{ message: 'hi', attachments: [{ uri: file.uri, name: '' }] }, 'attachments.0.name'],
      [{ message: 'hi', attachments: [{ uri: file.uri }] }, 'attachments.0.name'],
      [{ message: 'hi', attachments: [{ name: 'a' }] }, 'attachments.0.uri'],
      [{ message: 'hi', attachments: [{ uri: `javascript:alert('${MARK}')`, name: 'a' }] }, 'attachments.0.uri'],
      [{ message: 'hi', attachments: [{ uri: `data:text/html,${MARK}`, name: 'a' }] }, 'attachments.0.uri'],
      [{ message: 'hi', attachments: [{ uri: `file:///etc/${MARK}`, name: 'a' }] }, 'attachments.0.uri'],
      [{ message: 'hi', attachments: [{ uri: `//evil.example/${MARK}`, name: 'a' }] }, 'attachments.0.uri'],
      [{ message: 'hi', attachments: [{ uri: `/\\evil.example/${MARK}`, name: 'a' }] }, 'attachments.0.uri'],
      [{ message: 'hi', attachments: [{ uri: `https://ok.example/a b${MARK}`, name: 'a' }] }, 'attachments.0.uri'],
      [{ message: 'hi', attachments: [{ uri: 'https://ok.example/' + 'a'.repeat(2100), name: 'a' }] }, 'attachments.0.uri'],
      [{ message: 'hi', attachments: [{ uri: file.uri, name: `a\n${MARK}` }] }, 'attachments.0.name'],
      [{ message: 'hi', attachments: [{ uri: file.uri, name: 'n'.repeat(256) }] }, 'attachments.0.name'],
      [{ message: 'hi', attachments: [{ ...file, size: -1 }] }, 'attachments.0.size'],
      [{ message: 'hi', attachments: [{ ...file, size: 1.5 }] }, 'attachments.0.size'],
      [{ message: 'hi', attachments: [{ ...file, size: 2 ** 63 }] }, 'attachments.0.size'],
      [{ message: 'hi', attachments: [{ ...file, mimeType: 7 }] }, 'attachments.0.mimeType'],
    ];
    for (const [body, path] of cases) {
      const res = await callJson('POST', `/workspaces/${agent.id}/notify`, { token: agent.token, body });
      expect(res.status, JSON.stringify(body).slice(0, 120)).toBe(400);
      expect(res.body.issues.map((i: { path: string }) => i.path), JSON.stringify(body).slice(0, 120)).toContain(path);
      expect(JSON.stringify(res.body)).not.toContain(MARK);
    }
    for (const raw of ['{"message":"a\\u0000b"}', '{"message":"x","attachments":' + '['.repeat(100) + ']'.repeat(100) + '}', 'not json']) {
      const res = await callJson('POST', `/workspaces/${agent.id}/notify`, { token: agent.token, raw, headers: { 'Content-Type': 'application/json' } });
      expect(res.status, raw.slice(0, 40)).toBe(400);
    }
    const huge = await callJson('POST', `/workspaces/${agent.id}/notify`, { token: agent.token, raw: JSON.stringify({ message: 'x'.repeat(600 * 1024) }), headers: { 'Content-Type': 'application/json' } });
    expect(huge.status).toBe(413);
    expect(await feedCount(agent.id)).toBe(0);
  });

  it('accepts the URIs the upload round trip hands back, platform paths and an empty mimeType (omitted)', async () => {
    const agent = await registeredAgent({ mode: 'poll' });
    const attachments = [
      { uri: '/workspaces/x/chat/download?path=/workspace/a.txt', name: 'a.txt', mimeType: '', size: 0 },
      { uri: 'http://localhost:8080/files/b.txt', name: 'b.txt' },
    ];
    const res = await callJson('POST', `/workspaces/${agent.id}/notify`, { token: agent.token, body: { message: 'files', attachments } });
    expect(res.status).toBe(200);
    const [row] = await notifyRows(agent.id);
    expect(row.response_body.parts).toEqual([
      { kind: 'file', file: { uri: attachments[0]!.uri, name: 'a.txt', size: 0 } },
      { kind: 'file', file: { uri: attachments[1]!.uri, name: 'b.txt' } },
    ]);
  });
});
