// Discovery as the real clients use it (contract notes §3.2 RT-4/RT-5/RT-13, §3.4, §4.3–4.5):
//   POST /registry/update-card  — RT `watcher.py:76-89` (no headers) and RT3 `a2a_tools_identity.py:160-185` (bearer; reads `status`)
//   GET  /registry/discover/:id — RT3 `a2a_client.py:412-437` discover_peer (X-Workspace-ID + bearer; reads `name`, `status`),
//                                 RT1/RT2 (POST straight to `url`), SDK `molecule_agent/client.py:642-677` discover_peer
//                                 (X-Workspace-ID + bearer; 404 → None; keeps `url` only if http(s)) and `call_peer` (:684-749)
//   GET  /registry/:id/peers    — CH `server.ts:713-743` list_peers (bearer, ?q=), RT `a2a_client.py:693-743` (X-Workspace-ID +
//                                 bearer; must be a list), SDK `client.py:597-640` get_peers (reads id, name, url, role, tier, status, agent_card)
import { env } from 'cloudflare:test';
import { beforeAll, describe, expect, it } from 'vitest';
import { RequestScope } from '../../src/lib/request-scope';
import { storeAgentCard } from '../../src/workspaces/peers';
import { ADMIN, BASE, api, call, callJson, createWorkspace, loopback, sql, waitFor, uniq } from '../support/api';

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });
const proxyUrl = (id: string) => `${BASE}/workspaces/${id}/a2a`;

type Agent = { id: string; token: string; name: string };

/** An external workspace with a chosen name/role/parent, registered (push with a loopback URL, or poll). */
async function agent(opts: { name?: string; role?: string; parentId?: string; url?: string; card?: Record<string, unknown> } = {}): Promise<Agent> {
  const name = opts.name ?? `peer-${uniq()}`;
  const created = await createWorkspace({
    name,
    external: true,
    delivery_mode: opts.url ? 'push' : 'poll',
    ...(opts.role !== undefined ? { role: opts.role } : {}),
    ...(opts.parentId ? { parent_id: opts.parentId } : {}),
  });
  const reg = await callJson('POST', '/registry/register', {
    token: created.token,
    body: { id: created.id, agent_card: opts.card ?? { name }, ...(opts.url ? { url: opts.url } : { delivery_mode: 'poll' }) },
  });
  if (reg.status !== 200) throw new Error(`register failed: ${reg.status}`);
  return { id: created.id, token: created.token!, name };
}

const cardOf = async (id: string) => (await sql('SELECT agent_card FROM workspaces WHERE id = $1', [id]))[0]?.agent_card;

describe('POST /registry/update-card', () => {
  it('RT3 update_agent_card: own bearer → 200 {status:"updated"}, stored, AGENT_CARD_UPDATED carries the card', async () => {
    const a = await agent();
    const card = { name: 'renamed', description: 'now with skills', skills: [{ id: 'search', name: 'Search' }] };
    // a2a_tools_identity.py: json={"workspace_id", "agent_card"}, headers=auth_headers(); reads resp.json().get("status", "updated").
    const { data, response } = await api.POST('/registry/update-card', { body: { workspace_id: a.id, agent_card: card }, headers: auth(a.token) });
    expect(response.status).toBe(200);
    expect(data).toEqual({ status: 'updated' });
    expect(await cardOf(a.id)).toEqual(card);
    const [event] = await waitFor(async () => {
      const rows = await sql(`SELECT payload FROM structure_events WHERE workspace_id = $1 AND event_type = 'AGENT_CARD_UPDATED'`, [a.id]);
      return rows.length > 0 && rows;
    });
    expect(event.payload).toEqual({ agent_card: card });
  });

  it("RT watcher.py (no headers), another workspace's token and operators are 401, nothing written", async () => {
    const a = await agent({ card: { name: 'original' } });
    const b = await agent();
    const org = (await callJson('POST', '/org/tokens', { token: ADMIN, body: {} })).body.auth_token;
    const body = { workspace_id: a.id, agent_card: { name: 'hijacked' } };
    // watcher.py posts with no headers at all and ignores the answer: refusing it is harmless to it.
    expect(await callJson('POST', '/registry/update-card', { body })).toMatchObject({ status: 401, body: { error: 'missing workspace auth token' } });
    for (const token of [b.token, ADMIN, org, 'mws_not-a-real-token']) {
      expect(await callJson('POST', '/registry/update-card', { token, body })).toMatchObject({ status: 401, body: { error: 'invalid workspace auth token' } });
    }
    expect(await cardOf(a.id)).toEqual({ name: 'original' });
    expect(await sql(`SELECT 1 FROM structure_events WHERE workspace_id = $1 AND event_type = 'AGENT_CARD_UPDATED'`, [a.id])).toHaveLength(0);
  });

  it('unknown and removed workspaces are never written', async () => {
    const a = await agent({ card: { name: 'before removal' } });
    const unknown = crypto.randomUUID();
    expect((await call('POST', '/registry/update-card', { token: a.token, body: { workspace_id: unknown, agent_card: { name: 'x' } } })).status).toBe(401);
    expect(await sql('SELECT 1 FROM workspaces WHERE id = $1', [unknown])).toHaveLength(0);

    expect((await call('DELETE', `/workspaces/${a.id}`, { token: ADMIN })).status).toBeLessThan(300);
    // Its token died with it, so the agent is refused before anything is looked up...
    expect((await call('POST', '/registry/update-card', { token: a.token, body: { workspace_id: a.id, agent_card: { name: 'after' } } })).status).toBe(401);
    // ...and the conditional UPDATE the route relies on when a removal races that check writes nothing (→ 404).
    const scope = new RequestScope(env);
    try {
      expect(await storeAgentCard(scope.db, a.id, { name: 'after' })).toBe(false);
      expect(await storeAgentCard(scope.db, unknown, { name: 'after' })).toBe(false);
    } finally {
      await scope.close();
    }
    const [row] = await sql('SELECT status, agent_card FROM workspaces WHERE id = $1', [a.id]);
    expect(row).toEqual({ status: 'removed', agent_card: { name: 'before removal' } });
  });

  it('hostile bodies: deep, NUL, wrong types, oversized → small 4xx, nothing written', async () => {
    const a = await agent({ card: { name: 'kept' } });
    const send = (raw: string) => callJson('POST', '/registry/update-card', { token: a.token, raw, headers: { 'Content-Type': 'application/json' } });
    const deep = await send(`{"workspace_id":"${a.id}","agent_card":${'{"a":'.repeat(1000)}1${'}'.repeat(1000)}}`);
    expect(deep.status).toBe(400);
    const nul = await send(`{"workspace_id":"${a.id}","agent_card":{"name":"x\\u0000y"}}`);
    expect(nul.status).toBe(400);
    for (const agent_card of ['card', ['name'], null, 42]) {
      const res = await callJson('POST', '/registry/update-card', { token: a.token, body: { workspace_id: a.id, agent_card } });
      expect(res.status).toBe(400);
      expect(res.body.issues.map((i: { path: string }) => i.path)).toEqual(['agent_card']);
    }
    const badId = await callJson('POST', '/registry/update-card', { token: a.token, body: { workspace_id: 'ws-1', agent_card: {} } });
    expect(badId.body.issues.map((i: { path: string }) => i.path)).toEqual(['workspace_id']);
    const huge = await callJson('POST', '/registry/update-card', { token: a.token, body: { workspace_id: a.id, agent_card: { blob: 'x'.repeat(300 * 1024) } } });
    expect(huge.status).toBe(413);
    for (const res of [deep, nul, huge]) expect(JSON.stringify(res.body).length).toBeLessThan(2048);
    expect(await cardOf(a.id)).toEqual({ name: 'kept' });
    // Under the cap is fine (the same 256 KiB as register).
    const big = { blob: 'x'.repeat(200 * 1024) };
    expect((await call('POST', '/registry/update-card', { token: a.token, body: { workspace_id: a.id, agent_card: big } })).status).toBe(200);
    expect(await cardOf(a.id)).toEqual(big);
  });

  it('50 concurrent updates: all 200, the last write wins, one event each', async () => {
    const a = await agent();
    const cards = Array.from({ length: 50 }, (_, i) => ({ name: `card-${i}`, version: String(i) }));
    const results = await Promise.all(cards.map((agent_card) => call('POST', '/registry/update-card', { token: a.token, body: { workspace_id: a.id, agent_card } })));
    expect(results.map((r) => r.status)).toEqual(cards.map(() => 200));
    expect(cards).toContainEqual(await cardOf(a.id));
    await waitFor(async () => {
      const [row] = await sql(`SELECT count(*)::int AS n FROM structure_events WHERE workspace_id = $1 AND event_type = 'AGENT_CARD_UPDATED'`, [a.id]);
      return row.n === 50;
    });
  });
});

/**
 * R ─┬─ A ─── C          R2 ─── X
 *    ├─ B (push, private URL in its card)
 *    └─ P (external, never registered: awaiting_agent)
 * A's siblings: B, P; its child C; its parent R. X is a cousin of A: out of reach.
 */
type Tree = { tag: string; R: Agent; A: Agent; B: Agent; C: Agent; P: { id: string; name: string }; R2: Agent; X: Agent; privateUrl: string };

async function tree(): Promise<Tree> {
  const tag = `t${uniq()}`;
  const privateUrl = loopback(`/agent/echo/private-${tag}`);
  const R = await agent({ name: `${tag}-root`, role: 'Lead' });
  const R2 = await agent({ name: `${tag}-other-root` });
  const [A, B, X] = await Promise.all([
    agent({ name: `${tag}-alpha`, role: '', parentId: R.id }),
    agent({
      name: `${tag}-beta`,
      role: 'Researcher',
      parentId: R.id,
      url: privateUrl,
      card: { name: 'beta', url: privateUrl, additionalInterfaces: [{ url: privateUrl, transport: 'JSONRPC' }], skills: [] },
    }),
    agent({ name: `${tag}-cousin`, parentId: R2.id }),
  ]);
  const C = await agent({ name: `${tag}-child`, parentId: A.id });
  const p = await createWorkspace({ name: `${tag}-pending`, external: true, parent_id: R.id });
  return { tag, R, A, B, C, P: { id: p.id, name: `${tag}-pending` }, R2, X, privateUrl };
}

describe('GET /registry/discover/:id', () => {
  let t: Tree;
  beforeAll(async () => {
    t = await tree();
  });

  const discover = (target: string, token?: string, workspaceId?: string) =>
    callJson('GET', `/registry/discover/${target}`, { ...(token ? { token } : {}), headers: workspaceId ? { 'X-Workspace-ID': workspaceId } : {} });

  it('RT3 discover_peer (X-Workspace-ID + bearer): {id, name, url, status}, url = the platform proxy', async () => {
    const { data, response } = await api.GET('/registry/discover/{id}', {
      params: { path: { id: t.B.id }, header: { 'x-workspace-id': t.A.id } },
      headers: auth(t.A.token),
    });
    expect(response.status).toBe(200);
    // RT3 reads name and status ("offline" → error); RT1/RT2 and the SDK read url.
    expect(data).toEqual({ id: t.B.id, name: t.B.name, url: proxyUrl(t.B.id), status: 'online' });
    expect(JSON.stringify(data)).not.toContain(t.privateUrl);
  });

  it('RT1 (bearer only) resolves the caller from the bearer; parent, child, ancestor and self are all reachable', async () => {
    for (const [caller, target] of [
      [t.A, t.B],
      [t.A, t.R],
      [t.A, t.C],
      [t.C, t.A],
      [t.R, t.C],
      [t.C, t.R],
      [t.R, t.R2],
      [t.A, t.A],
    ] as const) {
      const res = await discover(target.id, caller.token);
      expect(res.status, `${caller.name} → ${target.name}`).toBe(200);
      expect(res.body.url).toBe(proxyUrl(target.id));
    }
  });

  it('SDK call_peer: the discovered url is an http(s) URL the caller can POST to with bearer + X-Workspace-ID', async () => {
    const res = await discover(t.B.id, t.A.token, t.A.id);
    const url: string = res.body.url;
    expect(url.startsWith('http://') || url.startsWith('https://')).toBe(true);
    const sent = await callJson('POST', new URL(url).pathname, {
      token: t.A.token,
      headers: { 'X-Workspace-ID': t.A.id },
      body: { jsonrpc: '2.0', id: 'c-1', method: 'message/send', params: { message: { role: 'user', messageId: 'm-1', parts: [{ kind: 'text', text: 'via discover' }] } } },
    });
    expect(sent.status).toBe(200);
    expect(sent.body.result.echoed.params.message.parts[0].text).toBe('via discover');
  });

  it('a cousin, an unknown id and a removed workspace answer the same 404', async () => {
    const removed = await agent({ parentId: t.R.id });
    expect((await call('DELETE', `/workspaces/${removed.id}`, { token: ADMIN })).status).toBeLessThan(300);
    const answers = [await discover(t.X.id, t.A.token, t.A.id), await discover(crypto.randomUUID(), t.A.token, t.A.id), await discover(removed.id, t.A.token, t.A.id)];
    for (const res of answers) {
      expect(res.status).toBe(404);
      expect(res.body).toEqual({ error: 'workspace not found' });
    }
    // The SDK's discover_peer maps exactly this to None; reverse direction too.
    expect((await discover(t.A.id, t.X.token)).status).toBe(404);
    expect((await discover(t.C.id, t.B.token)).status).toBe(404); // a sibling's child is a nephew, not a peer
  });

  it('a poll peer and one still awaiting its agent answer 200 (messages wait in its feed)', async () => {
    const poll = await discover(t.C.id, t.A.token, t.A.id);
    expect(poll.body).toEqual({ id: t.C.id, name: t.C.name, url: proxyUrl(t.C.id), status: 'online' });
    const pending = await discover(t.P.id, t.A.token, t.A.id);
    expect(pending.status).toBe(200);
    expect(pending.body).toEqual({ id: t.P.id, name: t.P.name, url: proxyUrl(t.P.id), status: 'awaiting_agent' });
  });

  it('header and bearer must agree; no bearer is 401 (builtin delegation.py sends only X-Workspace-ID)', async () => {
    expect(await discover(t.B.id, t.A.token, t.C.id)).toMatchObject({ status: 401, body: { error: 'invalid caller auth token' } });
    // Self-named header with someone else's bearer.
    expect((await discover(t.B.id, t.A.token, t.B.id)).status).toBe(401);
    expect(await discover(t.B.id, undefined, t.A.id)).toMatchObject({ status: 401, body: { error: 'missing caller auth token' } });
    expect((await discover(t.B.id)).status).toBe(401);
    expect((await discover(t.B.id, 'mws_revoked-or-made-up')).status).toBe(401);
    // A removed caller's (revoked) token derives no caller.
    const gone = await agent({ parentId: t.R.id });
    await call('DELETE', `/workspaces/${gone.id}`, { token: ADMIN });
    expect((await discover(t.B.id, gone.token, gone.id)).status).toBe(401);
  });

  it('X-Workspace-ID must be a workspace id (400); system prefixes are 403, as at the proxy', async () => {
    expect((await discover(t.B.id, t.A.token, 'not-a-uuid')).status).toBe(400);
    for (const forged of ['system:scheduler', 'webhook:github', 'SYSTEM:x']) {
      expect(await discover(t.B.id, t.A.token, forged)).toMatchObject({ status: 403, body: { error: 'invalid caller ID' } });
    }
    expect((await callJson('GET', '/registry/discover/not-a-uuid', { token: t.A.token })).body).toEqual({ error: 'invalid workspace ID' });
  });

  it('operators (admin, org) without X-Workspace-ID see any live workspace; they cannot speak for another one', async () => {
    const org = (await callJson('POST', '/org/tokens', { token: ADMIN, body: {} })).body.auth_token;
    for (const token of [ADMIN, org]) {
      const res = await discover(t.X.id, token);
      expect(res.body).toEqual({ id: t.X.id, name: t.X.name, url: proxyUrl(t.X.id), status: 'online' });
      expect((await discover(t.X.id, token, t.A.id)).status).toBe(401);
      expect((await discover(crypto.randomUUID(), token)).status).toBe(404);
    }
  });
});

const PEER_KEYS = ['active_tasks', 'agent_card', 'id', 'name', 'parent_id', 'role', 'status', 'tier', 'url'];

describe('GET /registry/:id/peers', () => {
  let t: Tree;
  beforeAll(async () => {
    t = await tree();
  });

  const peers = (id: string, opts: { token?: string; workspaceId?: string; q?: string } = {}) =>
    callJson('GET', `/registry/${id}/peers${opts.q !== undefined ? `?q=${encodeURIComponent(opts.q)}` : ''}`, {
      ...(opts.token ? { token: opts.token } : {}),
      headers: opts.workspaceId ? { 'X-Workspace-ID': opts.workspaceId } : {},
    });

  it('RT/SDK (X-Workspace-ID + bearer): siblings, then children, then the parent; every key the clients read', async () => {
    const { data, response } = await api.GET('/registry/{id}/peers', {
      params: { path: { id: t.A.id }, header: { 'x-workspace-id': t.A.id } },
      headers: auth(t.A.token),
    });
    expect(response.status).toBe(200);
    expect(Array.isArray(data)).toBe(true); // RT: "on 200 the body must be a list"
    const list = data!;
    expect(list.map((p) => p.id)).toEqual([t.B.id, t.P.id, t.C.id, t.R.id]);
    for (const p of list) {
      expect(Object.keys(p).sort()).toEqual(PEER_KEYS);
      expect(p.url).toBe(proxyUrl(p.id));
    }
    const [beta, pending, child, parent] = list;
    expect(beta).toEqual({
      id: t.B.id,
      name: t.B.name,
      role: 'Researcher',
      tier: expect.any(Number),
      status: 'online',
      url: proxyUrl(t.B.id),
      parent_id: t.R.id,
      active_tasks: 0,
      // The agent's card as published, but its endpoint fields name the proxy, not the agent.
      agent_card: { name: 'beta', url: proxyUrl(t.B.id), additionalInterfaces: [{ url: proxyUrl(t.B.id), transport: 'JSONRPC' }], skills: [] },
    });
    expect(pending).toMatchObject({ status: 'awaiting_agent', role: null, parent_id: t.R.id });
    expect(child).toMatchObject({ name: t.C.name, parent_id: t.A.id, agent_card: { name: t.C.name } });
    expect(parent).toMatchObject({ name: t.R.name, role: 'Lead', parent_id: null });
  });

  it('CH list_peers (bearer only) gets the same list; the cousin and the removed are absent; nothing private leaks', async () => {
    const removed = await agent({ parentId: t.R.id });
    await call('DELETE', `/workspaces/${removed.id}`, { token: ADMIN });
    const res = await peers(t.A.id, { token: t.A.token });
    expect(res.status).toBe(200);
    const ids = res.body.map((p: { id: string }) => p.id);
    expect(ids).toEqual([t.B.id, t.P.id, t.C.id, t.R.id]);
    const text = JSON.stringify(res.body);
    const [secret] = await sql('SELECT platform_inbound_secret FROM workspaces WHERE id = $1', [t.B.id]);
    for (const leak of [t.privateUrl, loopback(''), t.B.token, t.A.token, secret.platform_inbound_secret, 'budget', 'monthly_spend', 'token']) {
      expect(text).not.toContain(leak);
    }
  });

  it('exactly the workspaces the hierarchy rule lets it address: each one is discoverable, the cousin is not', async () => {
    const res = await peers(t.C.id, { token: t.C.token });
    // C has no siblings and no children: its parent only.
    expect(res.body.map((p: { id: string }) => p.id)).toEqual([t.A.id]);
    expect(res.body[0].role).toBeNull(); // stored as '': clients get null, never ""
    for (const p of (await peers(t.A.id, { token: t.A.token })).body) {
      expect((await call('GET', `/registry/discover/${p.id}`, { token: t.A.token })).status).toBe(200);
    }
    expect((await peers(t.X.id, { token: t.X.token })).body.map((p: { id: string }) => p.id)).toEqual([t.R2.id]);
  });

  it('a root sees the other roots, then its children (operator, filtered by q)', async () => {
    const res = await peers(t.R.id, { token: ADMIN, q: t.tag });
    expect(res.status).toBe(200);
    expect(res.body.map((p: { id: string }) => p.id)).toEqual([t.R2.id, t.A.id, t.B.id, t.P.id]);
    expect(res.body[0]).toMatchObject({ parent_id: null });
  });

  it('?q= is a case-insensitive substring of name or role; %, _ and \\ match literally', async () => {
    const tag = `q${uniq()}`;
    const parent = await agent({ name: `${tag}-parent` });
    const self = await agent({ name: `${tag}-self`, parentId: parent.id });
    const literal = await agent({ name: `${tag}_50%\\off`, parentId: parent.id });
    const lookalike = await agent({ name: `${tag}x50yzoff`, parentId: parent.id, role: 'Data ANALYST' });
    const names = async (q: string) => {
      const res = await peers(self.id, { token: self.token, q });
      expect(res.status).toBe(200);
      return res.body.map((p: { id: string }) => p.id);
    };
    expect(await names('_50%\\')).toEqual([literal.id]);
    expect(await names('analyst')).toEqual([lookalike.id]);
    expect(await names(tag.toUpperCase())).toEqual([literal.id, lookalike.id, parent.id]);
    expect(await names('%')).toEqual([literal.id]);
    expect(await names('')).toHaveLength(3);
    expect(await names('no-such-peer')).toEqual([]);
    expect((await peers(self.id, { token: self.token, q: 'x'.repeat(256) })).status).toBe(400);
    expect((await peers(self.id, { token: self.token, q: 'a\u0000b' })).status).toBe(400);
  });

  it('auth: own bearer or an operator; header must agree; others 401; unknown or removed 404', async () => {
    const org = (await callJson('POST', '/org/tokens', { token: ADMIN, body: {} })).body.auth_token;
    expect((await peers(t.A.id, { token: org })).status).toBe(200);
    expect((await peers(t.A.id, { token: ADMIN, workspaceId: t.A.id })).status).toBe(200);
    expect((await peers(t.A.id)).status).toBe(401);
    expect((await peers(t.A.id, { token: t.B.token })).status).toBe(401); // a sibling's token
    expect((await peers(t.A.id, { token: t.B.token, workspaceId: t.B.id })).status).toBe(401);
    expect(await peers(t.A.id, { token: t.A.token, workspaceId: t.B.id })).toMatchObject({ status: 401, body: { error: 'invalid caller auth token' } });
    expect((await peers(t.A.id, { token: ADMIN, workspaceId: t.B.id })).status).toBe(401);
    expect((await peers(t.A.id, { token: t.A.token, workspaceId: 'system:cron' })).status).toBe(403);
    expect((await peers(t.A.id, { token: t.A.token, workspaceId: 'nope' })).status).toBe(400);
    expect((await peers('not-a-uuid', { token: ADMIN })).status).toBe(400);
    expect(await peers(crypto.randomUUID(), { token: ADMIN })).toMatchObject({ status: 404, body: { error: 'workspace not found' } });
    const gone = await agent({ parentId: t.R.id });
    await call('DELETE', `/workspaces/${gone.id}`, { token: ADMIN });
    expect((await peers(gone.id, { token: ADMIN })).status).toBe(404);
    expect((await peers(gone.id, { token: gone.token })).status).toBe(401);
  });

  it('is bounded (500) and answers [] when alone', async () => {
    const lonely = await agent({ parentId: (await agent()).id });
    // Its only peer was its parent: with that one removed, the answer is an empty array, not 404.
    await sql(`UPDATE workspaces SET status = 'removed' WHERE id = (SELECT parent_id FROM workspaces WHERE id = $1)`, [lonely.id]);
    expect((await peers(lonely.id, { token: lonely.token })).body).toEqual([]);

    const crowd = await agent();
    const member = await agent({ parentId: crowd.id });
    await sql(`INSERT INTO workspaces (name, parent_id, status) SELECT 'crowd-' || g, $1, 'online' FROM generate_series(1, 510) g`, [crowd.id]);
    // Agents that have registered (been given a token): only those are shown to peers.
    await sql(`INSERT INTO workspace_auth_tokens (workspace_id, token_hash, prefix) SELECT id, md5(id::text), 'mws_crowd' FROM workspaces WHERE parent_id = $1 AND name LIKE 'crowd-%'`, [crowd.id]);
    const res = await peers(member.id, { token: member.token });
    expect(res.status).toBe(200);
    expect(res.body).toHaveLength(500);
  });
});
