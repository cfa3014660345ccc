import { describe, expect, it } from 'vitest';
import { ADMIN, call, callJson, createWorkspace, registeredAgent, sql } from '../support/api';

describe('admin auth', () => {
  it('requires a bearer on operator routes', async () => {
    const { status, body } = await callJson('GET', '/workspaces');
    expect(status).toBe(401);
    expect(body).toEqual({ error: 'admin auth required' });
  });

  it('rejects a wrong admin token and a workspace token', async () => {
    expect((await callJson('GET', '/workspaces', { token: 'nope' })).status).toBe(401);
    const agent = await registeredAgent({ mode: 'poll' });
    const res = await callJson('GET', '/workspaces', { token: agent.token });
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'invalid admin auth token' });
  });

  it('accepts the admin token', async () => {
    expect((await call('GET', '/workspaces', { token: ADMIN })).status).toBe(200);
  });
});

describe('org tokens', () => {
  it('mints once, lists without plaintext, grants org-wide access, revokes', async () => {
    const minted = await callJson('POST', '/org/tokens', { token: ADMIN, body: { name: 'ci bot' } });
    expect(minted.status).toBe(201);
    const orgToken: string = minted.body.auth_token;
    expect(orgToken).toMatch(/^mog_/);
    expect(minted.body.prefix).toBe(orgToken.slice(0, 12));

    const [stored] = await sql('SELECT token_hash, created_by FROM org_api_tokens WHERE id = $1', [minted.body.id]);
    expect(stored.token_hash).not.toContain(orgToken);
    expect(stored.token_hash).toHaveLength(64);
    expect(stored.created_by).toBe('admin-token');

    const list = await callJson('GET', '/org/tokens', { token: orgToken });
    expect(list.status).toBe(200);
    expect(JSON.stringify(list.body)).not.toContain(orgToken);
    expect(list.body.tokens.some((t: any) => t.id === minted.body.id)).toBe(true);

    // Org tokens reach any workspace's feed.
    const ws = await createWorkspace({ external: true, delivery_mode: 'poll' });
    expect((await call('GET', `/workspaces/${ws.id}/activity`, { token: orgToken })).status).toBe(200);

    const revoked = await callJson('DELETE', `/org/tokens/${minted.body.id}`, { token: ADMIN });
    expect(revoked.body).toEqual({ revoked: minted.body.id });
    expect((await call('GET', '/workspaces', { token: orgToken })).status).toBe(401);
    expect((await call('DELETE', `/org/tokens/${minted.body.id}`, { token: ADMIN })).status).toBe(404);
  });

  it('validates the name', async () => {
    const res = await callJson('POST', '/org/tokens', { token: ADMIN, body: { name: 'x'.repeat(101) } });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid request body');
  });
});

describe('workspace token auth', () => {
  it('own token reads the feed; missing, wrong, other-workspace, revoked and removed tokens are 401', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const b = await registeredAgent({ mode: 'poll' });
    expect((await call('GET', `/workspaces/${a.id}/activity`, { token: a.token })).status).toBe(200);

    const missing = await callJson('GET', `/workspaces/${a.id}/activity`);
    expect(missing).toMatchObject({ status: 401, body: { error: 'missing workspace auth token' } });
    const wrong = await callJson('GET', `/workspaces/${a.id}/activity`, { token: 'mws_notarealtoken' });
    expect(wrong).toMatchObject({ status: 401, body: { error: 'invalid workspace auth token' } });
    const other = await callJson('GET', `/workspaces/${a.id}/activity`, { token: b.token });
    expect(other).toMatchObject({ status: 401, body: { error: 'invalid workspace auth token' } });

    await sql('UPDATE workspace_auth_tokens SET revoked_at = now() WHERE workspace_id = $1', [b.id]);
    expect((await call('GET', `/workspaces/${b.id}/activity`, { token: b.token })).status).toBe(401);

    expect((await call('DELETE', `/workspaces/${a.id}`, { token: ADMIN })).status).toBe(200);
    expect((await call('GET', `/workspaces/${a.id}/activity`, { token: a.token })).status).toBe(401);
  });

  it('stores only a hash and touches last_used_at', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const rows = await sql('SELECT token_hash, prefix, last_used_at FROM workspace_auth_tokens WHERE workspace_id = $1', [a.id]);
    expect(rows).toHaveLength(1);
    expect(rows[0].token_hash).not.toBe(a.token);
    expect(a.token.startsWith(rows[0].prefix)).toBe(true);
    await call('GET', `/workspaces/${a.id}/activity`, { token: a.token });
    const [after] = await sql('SELECT last_used_at FROM workspace_auth_tokens WHERE workspace_id = $1', [a.id]);
    expect(after.last_used_at).not.toBeNull();
  });

  it('a malformed workspace id is a 400 before any lookup', async () => {
    const res = await callJson('GET', '/workspaces/not-a-uuid/activity', { token: ADMIN });
    expect(res).toMatchObject({ status: 400, body: { error: 'invalid workspace ID' } });
  });
});
