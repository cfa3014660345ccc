import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import worker from '../../src/index';
import { ADMIN, BASE, call, callJson, createWorkspace, registeredAgent, sql } from '../support/api';

const count = async () => (await sql('SELECT count(*)::int AS n FROM workspaces'))[0].n as number;

describe('POST /workspaces', () => {
  it('creates a provisioning workspace with encrypted secrets', async () => {
    const res = await callJson('POST', '/workspaces', { token: ADMIN, body: { name: 'Researcher', role: 'finds things', secrets: { OPENAI_API_KEY: 'sk-live-123' } } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ status: 'provisioning', delivery_mode: 'push', workspace_access: 'none' });
    const [secret] = await sql('SELECT encrypted_value, encryption_version FROM secrets WHERE workspace_id = $1', [res.body.id]);
    expect(secret.encryption_version).toBe(1);
    expect(secret.encrypted_value).not.toContain('sk-live-123');
    expect(atob(secret.encrypted_value)).not.toContain('sk-live-123');
    const [row] = await sql('SELECT tier, runtime, max_concurrent_tasks FROM workspaces WHERE id = $1', [res.body.id]);
    expect(row).toEqual({ tier: 3, runtime: 'langgraph', max_concurrent_tasks: 1 });
  });

  it('external poll workspace returns connection snippets with a working token', async () => {
    const res = await callJson('POST', '/workspaces', { token: ADMIN, body: { name: 'laptop', external: true, delivery_mode: 'poll' } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ status: 'awaiting_agent', external: true, delivery_mode: 'poll' });
    const conn = res.body.connection;
    expect(conn.platform_url).toBe('http://edge.test');
    expect(conn.registry_endpoint).toBe('http://edge.test/registry/register');
    expect(conn.curl_register_template).toContain(res.body.id);
    expect(conn.curl_register_template).toContain('"delivery_mode":"poll"');
    expect(conn.python_snippet).toContain('python -m molecule_agent connect');
    expect(conn.claude_code_channel_snippet).toContain('molecule-mcp-claude-channel');
    // The token is handed over once, never baked into copy-paste text.
    for (const snippet of [conn.curl_register_template, conn.python_snippet, conn.molecule_connect_snippet, conn.claude_code_channel_snippet]) {
      expect(snippet).not.toContain(conn.auth_token);
    }
    const reg = await call('POST', '/registry/register', { token: conn.auth_token, body: { id: res.body.id, agent_card: { name: 'x' } } });
    expect(reg.status).toBe(200);
  });

  it('external push workspace with a URL is online at once', async () => {
    const res = await callJson('POST', '/workspaces', { token: ADMIN, body: { name: 'remote', external: true, url: 'https://agent.example.com/a2a' } });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ status: 'online', external: true });
    expect(res.body.connection).toBeUndefined();
  });

  it('rejects bad input with nothing written', async () => {
    const before = await count();
    const cases: [unknown, string][] = [
      [{ name: 'x', delivery_mode: 'smoke-signal' }, 'delivery_mode'],
      [{ name: 'line\nbreak' }, 'name'],
      [{ name: 'a{b}' }, 'name'],
      [{ name: 'x'.repeat(256) }, 'name'],
      [{ name: 'x', tier: 'high' }, 'tier'],
      [{ name: 'x', workspace_dir: '/etc/passwd' }, 'workspace_dir'],
      [{ name: 'x', workspace_dir: '/home/../etc' }, 'workspace_dir'],
      [{ name: 'x', budget_limit: -1 }, 'budget_limit'],
      // A record key is input: the issue names the record, never the key.
      [{ name: 'x', secrets: { 'bad key': 'v' } }, 'secrets'],
      [{}, 'name'],
    ];
    for (const [body, path] of cases) {
      const res = await callJson('POST', '/workspaces', { token: ADMIN, body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.issues.map((i: any) => i.path)).toContain(path);
    }
    expect((await callJson('POST', '/workspaces', { token: ADMIN, raw: '{not json' })).status).toBe(400);
    expect((await callJson('POST', '/workspaces', { token: ADMIN, body: { name: 'x', role: 'y'.repeat(70 * 1024) } })).status).toBe(413);
    // Private ranges are refused in SaaS (the test Worker runs self-hosted, where they are accepted).
    const ctx = createExecutionContext();
    const unsafe = await worker.fetch(
      new Request(`${BASE}/workspaces`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: 'x', external: true, url: 'http://10.0.0.5/' }),
      }),
      { ...env, MOLECULE_DEPLOY_MODE: 'saas' },
      ctx,
    );
    await waitOnExecutionContext(ctx);
    expect(unsafe.status).toBe(400);
    expect(await unsafe.json()).toMatchObject({ error: 'invalid agent url' });
    const orphan = await callJson('POST', '/workspaces', { token: ADMIN, body: { name: 'x', parent_id: crypto.randomUUID() } });
    expect(orphan).toMatchObject({ status: 400, body: { error: 'parent workspace not found' } });
    expect(await count()).toBe(before);
  });
});

describe('GET/PATCH /workspaces/:id', () => {
  it('never exposes secrets or the inbound secret', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const [row] = await sql('SELECT platform_inbound_secret FROM workspaces WHERE id = $1', [a.id]);
    const one = await callJson('GET', `/workspaces/${a.id}`, { token: a.token });
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ id: a.id, status: 'online', delivery_mode: 'poll' });
    expect(JSON.stringify(one.body)).not.toContain(row.platform_inbound_secret);
    const list = await callJson('GET', '/workspaces', { token: ADMIN });
    expect(JSON.stringify(list.body)).not.toContain(row.platform_inbound_secret);
    expect(list.body.some((w: any) => w.id === a.id)).toBe(true);
  });

  it('patches fields, refuses cycles, 404s unknown', async () => {
    const parent = await createWorkspace();
    const child = await createWorkspace({ parent_id: parent.id });
    const ok = await callJson('PATCH', `/workspaces/${child.id}`, { token: ADMIN, body: { name: 'renamed', workspace_dir: null } });
    expect(ok.body).toEqual({ status: 'updated', needs_restart: true });
    expect((await sql('SELECT name FROM workspaces WHERE id = $1', [child.id]))[0].name).toBe('renamed');
    const cycle = await callJson('PATCH', `/workspaces/${parent.id}`, { token: ADMIN, body: { parent_id: child.id } });
    expect(cycle).toMatchObject({ status: 400, body: { error: 'a workspace cannot be its own ancestor' } });
    expect((await call('PATCH', `/workspaces/${crypto.randomUUID()}`, { token: ADMIN, body: { name: 'x' } })).status).toBe(404);
    expect((await call('PATCH', `/workspaces/${child.id}`, { token: ADMIN, body: {} })).status).toBe(400);
  });
});

describe('DELETE /workspaces/:id', () => {
  it('needs confirmation for children, then cascades: removed + tokens revoked', async () => {
    const root = await registeredAgent({ mode: 'poll' });
    const child = await registeredAgent({ mode: 'poll', parentId: root.id });
    const grandchild = await registeredAgent({ mode: 'poll', parentId: child.id });

    const refused = await callJson('DELETE', `/workspaces/${root.id}`, { token: ADMIN });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ status: 'confirmation_required', children_count: 1, children: [{ id: child.id }] });

    const done = await callJson('DELETE', `/workspaces/${root.id}?confirm=true`, { token: ADMIN });
    expect(done.body).toEqual({ status: 'removed', cascade_deleted: 2 });
    const rows = await sql('SELECT status FROM workspaces WHERE id = ANY($1::uuid[])', [[root.id, child.id, grandchild.id]]);
    expect(rows.map((r) => r.status)).toEqual(['removed', 'removed', 'removed']);
    const live = await sql('SELECT count(*)::int AS n FROM workspace_auth_tokens WHERE workspace_id = ANY($1::uuid[]) AND revoked_at IS NULL', [[root.id, child.id, grandchild.id]]);
    expect(live[0].n).toBe(0);
    // A tombstone answers 410 with the re-onboarding hint, to operators and to the agent's own revoked token.
    for (const token of [ADMIN, root.token]) {
      const gone = await callJson('GET', `/workspaces/${root.id}`, { token });
      expect(gone).toMatchObject({ status: 410, body: { error: 'workspace removed', id: root.id, hint: expect.any(String) } });
      expect(Date.parse(gone.body.removed_at)).toBeGreaterThan(0);
    }
    // Another workspace's token learns nothing about it.
    const stranger = await registeredAgent({ mode: 'poll' });
    expect((await call('GET', `/workspaces/${root.id}`, { token: stranger.token })).status).toBe(401);
    expect((await call('DELETE', `/workspaces/${root.id}`, { token: ADMIN })).status).toBe(404);
    const events = await sql(`SELECT count(*)::int AS n FROM structure_events WHERE event_type = 'WORKSPACE_REMOVED' AND workspace_id = ANY($1::uuid[])`, [[root.id, child.id, grandchild.id]]);
    expect(events[0].n).toBe(3);
  });
});
