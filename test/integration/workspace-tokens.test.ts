// /workspaces/:id/tokens and POST /admin/workspaces/:id/tokens (clients-contract §4.12).
// Clients: the channel plugin's README (Molecule-AI/molecule-mcp-claude-channel@fb7a89c README.md,
// "Getting workspace_id + token": an operator runs `curl -X POST …/admin/workspaces/<id>/tokens`
// with `{"label":"claude-channel"}` and pastes `auth_token` into MOLECULE_WORKSPACE_TOKENS), and the
// canvas Tokens tab (canvas/src/components/settings/TokensTab.tsx: reads tokens[]{id,prefix,
// created_at,last_used_at} and auth_token; DELETE …/tokens/:id). The minted token is then used by
// the plugin exactly as the workspace's own token (server.ts, heartbeat.ts), which is replayed here.
import { describe, expect, it } from 'vitest';
import { ADMIN, BASE, call, callJson, createWorkspace, registeredAgent, sql } from '../support/api';

const liveTokens = async (id: string) =>
  (await sql('SELECT count(*)::int AS n FROM workspace_auth_tokens WHERE workspace_id = $1 AND revoked_at IS NULL', [id]))[0].n as number;
const allTokens = async (id: string) => (await sql('SELECT count(*)::int AS n FROM workspace_auth_tokens WHERE workspace_id = $1', [id]))[0].n as number;

const MINTED_MESSAGE = 'Save this token now — it cannot be retrieved again.';

describe('POST /admin/workspaces/:id/tokens — the channel plugin README', () => {
  it('{"label":"claude-channel"} → 201 {auth_token, workspace_id, id, prefix, message}; stored as minted with its label', async () => {
    const ws = await createWorkspace({ external: true, delivery_mode: 'poll' });
    const res = await callJson('POST', `/admin/workspaces/${ws.id}/tokens`, { token: ADMIN, body: { label: 'claude-channel' } });
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ auth_token: expect.stringMatching(/^mws_[A-Za-z0-9_-]{43}$/), workspace_id: ws.id, id: expect.any(String), prefix: res.body.auth_token.slice(0, 12), message: MINTED_MESSAGE });
    const [row] = await sql('SELECT origin, label, prefix, token_hash FROM workspace_auth_tokens WHERE id = $1', [res.body.id]);
    expect(row).toMatchObject({ origin: 'minted', label: 'claude-channel', prefix: res.body.prefix });
    expect(row.token_hash).not.toContain(res.body.auth_token);
  });

  it('no body at all (curl -X POST), an empty object or a null label → 201 without a label', async () => {
    const ws = await createWorkspace({ external: true, delivery_mode: 'poll' });
    for (const body of [undefined, {}, { label: null }, { label: '  ' }]) {
      const res = await callJson('POST', `/admin/workspaces/${ws.id}/tokens`, { token: ADMIN, body });
      expect(res.status, JSON.stringify(body)).toBe(201);
      expect((await sql('SELECT label FROM workspace_auth_tokens WHERE id = $1', [res.body.id]))[0].label).toBeNull();
    }
  });

  it('operators only (even the workspace’s own token is 401); unknown and removed workspaces → 404; nothing written', async () => {
    const agent = await registeredAgent({ mode: 'poll' });
    const before = await allTokens(agent.id);
    for (const token of [agent.token, undefined, 'mws_forged']) {
      expect((await callJson('POST', `/admin/workspaces/${agent.id}/tokens`, { token, body: { label: 'x' } })).status, String(token)).toBe(401);
    }
    expect(await allTokens(agent.id)).toBe(before);
    expect((await callJson('POST', `/admin/workspaces/${crypto.randomUUID()}/tokens`, { token: ADMIN, body: {} })).status).toBe(404);
    expect((await callJson('POST', '/admin/workspaces/nope/tokens', { token: ADMIN, body: {} })).status).toBe(400);
    const removed = await createWorkspace({ external: true, delivery_mode: 'poll' });
    expect((await call('DELETE', `/workspaces/${removed.id}`, { token: ADMIN })).status).toBe(200);
    const gone = await callJson('POST', `/admin/workspaces/${removed.id}/tokens`, { token: ADMIN, body: { label: 'claude-channel' } });
    expect(gone.status).toBe(404);
    expect(gone.body).toEqual({ error: 'workspace not found' });
    expect(await liveTokens(removed.id)).toBe(0);
  });
});

describe('a minted token is the workspace’s own token on every route', () => {
  it('register (poll), heartbeat, activity probe and poll, a2a to a peer, notify, state — as the channel plugin sends them', async () => {
    const ws = await createWorkspace({ external: true, delivery_mode: 'poll' });
    const peer = await registeredAgent({ mode: 'poll' });
    const minted = await callJson('POST', `/admin/workspaces/${ws.id}/tokens`, { token: ADMIN, body: { label: 'claude-channel' } });
    const token = minted.body.auth_token as string;
    const headers = { Origin: BASE };

    // server.ts:425-473 registerAsPoll: {id, delivery_mode:'poll', agent_card:{name, description}}, no url.
    const reg = await callJson('POST', '/registry/register', { token, headers, body: { id: ws.id, delivery_mode: 'poll', agent_card: { name: 'Claude Code (channel)', description: 'Local Claude Code session' } } });
    expect(reg.status, JSON.stringify(reg.body)).toBe(200);
    expect(reg.body.delivery_mode).toBe('poll');
    expect(reg.body.auth_token).toBeUndefined();
    // heartbeat.ts:75-109: {workspace_id} only.
    expect((await call('POST', '/registry/heartbeat', { token, headers, body: { workspace_id: ws.id } })).status).toBe(200);
    // server.ts:383-411 cursor probe: the all-zero since_id must be 410.
    expect((await call('GET', `/workspaces/${ws.id}/activity?type=a2a_receive&since_id=00000000-0000-0000-0000-000000000000&limit=1`, { token, headers })).status).toBe(410);
    // server.ts:569-647 reply_to_workspace with a peer: POST /workspaces/:peer/a2a with X-Source-Workspace-Id
    // and no X-Workspace-ID, so the caller comes from the bearer. (The plugin's parts carry `type`,
    // which the proxy's envelope check does not accept yet; the part here uses `kind`.)
    const a2a = await callJson('POST', `/workspaces/${peer.id}/a2a`, {
      token,
      headers: { ...headers, 'X-Source-Workspace-Id': ws.id },
      body: { jsonrpc: '2.0', id: crypto.randomUUID(), method: 'message/send', params: { message: { messageId: crypto.randomUUID(), parts: [{ kind: 'text', text: 'hi peer' }] } } },
    });
    expect(a2a.status, JSON.stringify(a2a.body)).toBe(200);
    expect(a2a.body).toMatchObject({ status: 'queued', delivery_mode: 'poll' });
    const [delivered] = await sql(`SELECT source_id FROM activity_logs WHERE workspace_id = $1 AND activity_type = 'a2a_receive'`, [peer.id]);
    expect(delivered.source_id).toBe(ws.id);
    expect((await call('POST', `/workspaces/${ws.id}/notify`, { token, headers, body: { message: 'hello user' } })).status).toBe(200);
    const poll = await callJson('GET', `/workspaces/${ws.id}/activity?type=a2a_receive&limit=100&since_secs=30`, { token, headers });
    expect(poll.status).toBe(200);
    expect((await callJson('GET', `/workspaces/${ws.id}/state`, { token })).body).toMatchObject({ workspace_id: ws.id, status: 'online', deleted: false });
    // The connection token handed over at create still works alongside it.
    expect((await call('POST', '/registry/heartbeat', { token: ws.token, body: { workspace_id: ws.id } })).status).toBe(200);
  });
});

describe('GET/POST/DELETE /workspaces/:id/tokens — the canvas Tokens tab', () => {
  it('lists live tokens newest first with {id, prefix, label, created_at, last_used_at}; never a hash or plaintext; pages with limit/offset', async () => {
    const agent = await registeredAgent({ mode: 'poll' });
    const minted: { id: string; auth_token: string; prefix: string }[] = [];
    for (const label of ['first', 'second', 'third']) {
      const res = await callJson('POST', `/workspaces/${agent.id}/tokens`, { token: ADMIN, body: { label } });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ workspace_id: agent.id, message: MINTED_MESSAGE });
      minted.push(res.body);
    }
    const list = await callJson('GET', `/workspaces/${agent.id}/tokens`, { token: agent.token });
    expect(list.status).toBe(200);
    expect(list.body.count).toBe(4);
    expect(list.body.tokens.map((t: any) => t.label)).toEqual(['third', 'second', 'first', null]);
    for (const t of list.body.tokens) {
      expect(Object.keys(t).sort()).toEqual(['created_at', 'id', 'label', 'last_used_at', 'prefix']);
      expect(t.prefix).toMatch(/^mws_.{8}$/);
      expect(typeof t.created_at).toBe('string');
    }
    expect(list.body.tokens[0]).toMatchObject({ id: minted[2]!.id, prefix: minted[2]!.prefix, last_used_at: null });
    for (const m of minted) expect(JSON.stringify(list.body)).not.toContain(m.auth_token);

    const page1 = await callJson('GET', `/workspaces/${agent.id}/tokens?limit=2`, { token: ADMIN });
    const page2 = await callJson('GET', `/workspaces/${agent.id}/tokens?limit=2&offset=2`, { token: ADMIN });
    expect(page1.body.tokens.map((t: any) => t.label)).toEqual(['third', 'second']);
    expect(page1.body.count).toBe(2);
    expect(page2.body.tokens.map((t: any) => t.label)).toEqual(['first', null]);
    expect((await callJson('GET', `/workspaces/${agent.id}/tokens?limit=100000`, { token: ADMIN })).body.count).toBe(4);

    // Revoked tokens leave the list.
    expect((await callJson('DELETE', `/workspaces/${agent.id}/tokens/${minted[1]!.id}`, { token: ADMIN })).body).toEqual({ status: 'revoked' });
    expect((await callJson('GET', `/workspaces/${agent.id}/tokens`, { token: agent.token })).body.tokens.map((t: any) => t.label)).toEqual(['third', 'first', null]);

    for (const q of ['limit=0', 'limit=-1', 'limit=abc', 'offset=-1', 'offset=1.5', 'limit=']) {
      expect((await callJson('GET', `/workspaces/${agent.id}/tokens?${q}`, { token: ADMIN })).status, q).toBe(400);
    }
  });

  it('revoke: the token stops working at once (401), a second revoke is 404, another workspace’s token id is 404 and stays live', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const b = await registeredAgent({ mode: 'poll' });
    const minted = await callJson('POST', `/workspaces/${a.id}/tokens`, { token: ADMIN, body: {} });
    const token = minted.body.auth_token as string;
    expect((await call('POST', '/registry/heartbeat', { token, body: { workspace_id: a.id } })).status).toBe(200);

    const bMinted = await callJson('POST', `/workspaces/${b.id}/tokens`, { token: ADMIN, body: {} });
    const cross = await callJson('DELETE', `/workspaces/${a.id}/tokens/${bMinted.body.id}`, { token: ADMIN });
    expect(cross.status).toBe(404);
    expect((await callJson('DELETE', `/workspaces/${a.id}/tokens/${bMinted.body.id}`, { token: ADMIN })).status).toBe(404);
    expect((await sql('SELECT revoked_at FROM workspace_auth_tokens WHERE id = $1', [bMinted.body.id]))[0].revoked_at).toBeNull();
    expect((await call('POST', '/registry/heartbeat', { token: bMinted.body.auth_token, body: { workspace_id: b.id } })).status).toBe(200);
    // Nor can b's own token revoke on a's path.
    expect((await callJson('DELETE', `/workspaces/${a.id}/tokens/${minted.body.id}`, { token: b.token })).status).toBe(401);

    const revoked = await callJson('DELETE', `/workspaces/${a.id}/tokens/${minted.body.id}`, { token: ADMIN });
    expect(revoked.status).toBe(200);
    expect(revoked.body).toEqual({ status: 'revoked' });
    expect((await call('POST', '/registry/heartbeat', { token, body: { workspace_id: a.id } })).status).toBe(401);
    expect((await call('GET', `/workspaces/${a.id}/activity`, { token })).status).toBe(401);
    expect((await callJson('DELETE', `/workspaces/${a.id}/tokens/${minted.body.id}`, { token: ADMIN })).status).toBe(404);
    expect((await callJson('DELETE', `/workspaces/${a.id}/tokens/${crypto.randomUUID()}`, { token: ADMIN })).status).toBe(404);
    expect((await callJson('DELETE', `/workspaces/${a.id}/tokens/not-a-uuid`, { token: ADMIN })).status).toBe(400);
    // The workspace's original token is untouched.
    expect((await call('POST', '/registry/heartbeat', { token: a.token, body: { workspace_id: a.id } })).status).toBe(200);
  });

  it('auth and input: another workspace’s token → 401, bad labels → 400; nothing written', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const b = await registeredAgent({ mode: 'poll' });
    const before = await allTokens(a.id);
    expect((await callJson('GET', `/workspaces/${a.id}/tokens`, { token: b.token })).status).toBe(401);
    expect((await callJson('GET', `/workspaces/${a.id}/tokens`)).status).toBe(401);
    expect((await callJson('POST', `/workspaces/${a.id}/tokens`, { token: b.token, body: {} })).status).toBe(401);
    expect((await callJson('POST', `/workspaces/${a.id}/tokens`, { body: {} })).status).toBe(401);
    for (const body of [{ label: 'x'.repeat(101) }, { label: 'line\nbreak' }, { label: 42 }, []]) {
      const res = await callJson('POST', `/workspaces/${a.id}/tokens`, { token: ADMIN, body });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    for (const raw of ['not json', '{"label":"a\\u0000"}', '{"label":' + '['.repeat(100) + ']'.repeat(100) + '}']) {
      expect((await callJson('POST', `/workspaces/${a.id}/tokens`, { token: ADMIN, raw, headers: { 'Content-Type': 'application/json' } })).status, raw.slice(0, 20)).toBe(400);
    }
    expect(await allTokens(a.id)).toBe(before);
    expect((await callJson('POST', `/workspaces/${crypto.randomUUID()}/tokens`, { token: ADMIN, body: {} })).status).toBe(404);
  });
});

describe('at most 50 live tokens per workspace, under concurrency', () => {
  it('60 concurrent mints (both routes) on a workspace holding its one issued token: exactly 50 live, the rest 429', async () => {
    const agent = await registeredAgent({ mode: 'poll' });
    expect(await liveTokens(agent.id)).toBe(1);
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        i % 2 === 0
          ? callJson('POST', `/admin/workspaces/${agent.id}/tokens`, { token: ADMIN, body: { label: `admin-${i}` } })
          : callJson('POST', `/workspaces/${agent.id}/tokens`, { token: ADMIN, body: { label: `own-${i}` } }),
      ),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(49);
    const refused = results.filter((r) => r.status === 429);
    expect(refused).toHaveLength(11);
    for (const r of refused) expect(r.body).toEqual({ error: 'maximum 50 active tokens per workspace' });
    expect(await liveTokens(agent.id)).toBe(50);
    expect(new Set(results.filter((r) => r.status === 201).map((r) => r.body.auth_token)).size).toBe(49);

    // At the cap: refused until one is revoked, then exactly one more fits.
    expect((await callJson('POST', `/admin/workspaces/${agent.id}/tokens`, { token: ADMIN, body: {} })).status).toBe(429);
    const victim = results.find((r) => r.status === 201)!.body.id;
    expect((await call('DELETE', `/workspaces/${agent.id}/tokens/${victim}`, { token: ADMIN })).status).toBe(200);
    const again = await Promise.all(Array.from({ length: 5 }, () => callJson('POST', `/workspaces/${agent.id}/tokens`, { token: ADMIN, body: {} })));
    expect(again.map((r) => r.status).sort()).toEqual([201, 429, 429, 429, 429]);
    expect(await liveTokens(agent.id)).toBe(50);
  });
});

describe('minting and revoking are operator actions', () => {
  it("a workspace's own token may list, but neither mint more of itself nor revoke its siblings", async () => {
    const agent = await registeredAgent({ mode: 'poll' });
    const minted = await callJson('POST', `/workspaces/${agent.id}/tokens`, { token: ADMIN, body: { label: 'channel' } });
    expect(minted.status).toBe(201);
    const own = await callJson('POST', `/workspaces/${agent.id}/tokens`, { token: minted.body.auth_token, body: {} });
    expect(own).toMatchObject({ status: 403, body: { error: 'minting and revoking workspace tokens is an operator action' } });
    const [issued] = await sql(`SELECT id FROM workspace_auth_tokens WHERE workspace_id = $1 AND origin = 'issued'`, [agent.id]);
    expect((await call('DELETE', `/workspaces/${agent.id}/tokens/${issued.id}`, { token: minted.body.auth_token })).status).toBe(403);
    expect((await call('GET', `/workspaces/${agent.id}/tokens`, { token: minted.body.auth_token })).status).toBe(200);
    const live = await sql('SELECT count(*)::int AS n FROM workspace_auth_tokens WHERE workspace_id = $1 AND revoked_at IS NULL', [agent.id]);
    expect(live[0].n).toBe(2);
  });
});

describe('revoking a token ends its live feed', () => {
  it("a socket opened with a token closes when that token is revoked; the agent's other sockets stay open", async () => {
    const { exports } = await import('cloudflare:workers');
    const open = async (id: string, token: string) => {
      const res = await (exports as unknown as { default: Fetcher }).default.fetch(
        new Request(`${BASE}/workspaces/${id}/events`, { headers: { Upgrade: 'websocket', Authorization: `Bearer ${token}`, 'X-Molecule-Subscriber': 'workspace-token:forged' } }),
      );
      expect(res.status).toBe(101);
      const socket = res.webSocket!;
      let closed: number | undefined;
      socket.addEventListener('close', (e) => (closed = e.code));
      socket.accept();
      return { closed: () => closed };
    };
    const agent = await registeredAgent({ mode: 'poll' });
    const minted = await callJson('POST', `/workspaces/${agent.id}/tokens`, { token: ADMIN, body: { label: 'leaked' } });
    const leaked = await open(agent.id, minted.body.auth_token);
    const own = await open(agent.id, agent.token);
    expect((await call('DELETE', `/workspaces/${agent.id}/tokens/${minted.body.id}`, { token: ADMIN })).status).toBe(200);
    const deadline = Date.now() + 3000;
    while (leaked.closed() === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    expect(leaked.closed()).toBe(1008);
    expect(own.closed()).toBeUndefined();
  });
});

describe('token labels', () => {
  it('no line breaks of any kind: C1 controls and U+2028/U+2029 are refused like C0', async () => {
    const agent = await registeredAgent({ mode: 'poll' });
    for (const label of ['a\u0085b', 'a\u2028b', 'a\u2029b', 'a\nb']) {
      expect((await call('POST', `/workspaces/${agent.id}/tokens`, { token: ADMIN, body: { label } })).status, JSON.stringify(label)).toBe(400);
    }
  });
});
