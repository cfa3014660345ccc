import { describe, expect, it } from 'vitest';
import { ADMIN, BASE, call, loopback, registeredAgent } from '../support/api';
import { exports } from 'cloudflare:workers';

async function subscribe(workspaceId: string, token: string) {
  const res = await (exports as unknown as { default: Fetcher }).default.fetch(
    new Request(`${BASE}/workspaces/${workspaceId}/events`, { headers: { Upgrade: 'websocket', Authorization: `Bearer ${token}` } }),
  );
  expect(res.status).toBe(101);
  const socket = res.webSocket!;
  socket.accept();
  const messages: any[] = [];
  socket.addEventListener('message', (e) => messages.push(JSON.parse(String(e.data))));
  return { messages, close: () => socket.close() };
}

async function until<T>(fn: () => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('event not received');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('live events', () => {
  it('ACTIVITY_LOGGED carries both bodies for a proxied exchange', async () => {
    const name = crypto.randomUUID().slice(0, 8);
    const caller = await registeredAgent({ mode: 'poll' });
    const target = await registeredAgent({ url: loopback(`/agent/echo/${name}`) });
    const feed = await subscribe(target.id, target.token);
    const res = await call('POST', `/workspaces/${target.id}/a2a`, {
      token: caller.token,
      body: { jsonrpc: '2.0', id: 1, method: 'message/send', params: { message: { role: 'user', messageId: 'm-1', parts: [{ kind: 'text', text: 'audit moleculesai.app for performance' }] } } },
    });
    expect(res.status).toBe(200);
    const event = await until(() => feed.messages.find((m) => m.event === 'ACTIVITY_LOGGED'));
    expect(event.workspace_id).toBe(target.id);
    expect(event.payload.request_body.params.message.parts[0].text).toBe('audit moleculesai.app for performance');
    expect(event.payload.response_body.result.echoed.id).toBe(1);
    expect(event.payload.tool_trace).toEqual([{ tool: 'echo' }]);
    feed.close();
  });

  it('a failed exchange broadcasts without a response body, and without internal text', async () => {
    const name = crypto.randomUUID().slice(0, 8);
    const caller = await registeredAgent({ mode: 'poll' });
    const target = await registeredAgent({ url: loopback(`/agent/status/500/${name}`) });
    const feed = await subscribe(target.id, ADMIN);
    await call('POST', `/workspaces/${target.id}/a2a`, { token: caller.token, body: { jsonrpc: '2.0', id: 1, method: 'message/send', params: { message: { parts: [{ kind: 'text', text: 'x' }] } } } });
    const event = await until(() => feed.messages.find((m) => m.event === 'ACTIVITY_LOGGED'));
    expect(event.payload.status).toBe('error');
    expect('response_body' in event.payload).toBe(false);
    expect(JSON.stringify(event)).not.toContain('secret_path');
    feed.close();
  });

  it('the feed needs workspace access', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const b = await registeredAgent({ mode: 'poll' });
    const res = await (exports as unknown as { default: Fetcher }).default.fetch(
      new Request(`${BASE}/workspaces/${a.id}/events`, { headers: { Upgrade: 'websocket', Authorization: `Bearer ${b.token}` } }),
    );
    expect(res.status).toBe(401);
  });
});
