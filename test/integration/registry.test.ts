import { describe, expect, it } from 'vitest';
import { ADMIN, call, callJson, createWorkspace, loopback, registeredAgent, sql } from '../support/api';

const card = { name: 'agent', version: '1.0.0' };

describe('POST /registry/register', () => {
  it('PollMode_AcceptsEmptyURL', async () => {
    const ws = await createWorkspace({ external: true });
    const res = await callJson('POST', '/registry/register', { token: ws.token, body: { id: ws.id, agent_card: card, delivery_mode: 'poll' } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'registered', delivery_mode: 'poll' });
    const [row] = await sql('SELECT status, delivery_mode, url FROM workspaces WHERE id = $1', [ws.id]);
    expect(row).toEqual({ status: 'online', delivery_mode: 'poll', url: null });
  });

  it('PushMode_RejectsEmptyURL', async () => {
    const ws = await createWorkspace({ external: true });
    const res = await callJson('POST', '/registry/register', { token: ws.token, body: { id: ws.id, agent_card: card } });
    expect(res.status).toBe(400);
    expect(res.body.error).toContain('url is required');
    const [row] = await sql('SELECT status FROM workspaces WHERE id = $1', [ws.id]);
    expect(row.status).toBe('awaiting_agent');
  });

  it('InvalidDeliveryMode is a 400 with nothing written', async () => {
    const ws = await createWorkspace({ external: true });
    const res = await callJson('POST', '/registry/register', { token: ws.token, body: { id: ws.id, agent_card: card, delivery_mode: 'carrier-pigeon' } });
    expect(res.status).toBe(400);
    expect(res.body.issues[0].path).toBe('delivery_mode');
    const [row] = await sql('SELECT status, delivery_mode FROM workspaces WHERE id = $1', [ws.id]);
    expect(row).toEqual({ status: 'awaiting_agent', delivery_mode: 'push' });
  });

  it('PollMode_PreservesExistingValue when the payload omits the mode', async () => {
    const ws = await createWorkspace({ external: true, delivery_mode: 'poll' });
    const res = await callJson('POST', '/registry/register', { token: ws.token, body: { id: ws.id, agent_card: card } });
    expect(res.status).toBe(200);
    expect(res.body.delivery_mode).toBe('poll');
  });

  it('push mode stores a safe URL and refuses an unsafe one', async () => {
    const ws = await createWorkspace({ external: true });
    const bad = await callJson('POST', '/registry/register', { token: ws.token, body: { id: ws.id, agent_card: card, url: 'http://169.254.169.254/latest' } });
    expect(bad.status).toBe(400);
    expect(bad.body).toEqual({ error: 'invalid agent url', reason: 'host is link-local' });
    const good = await callJson('POST', '/registry/register', { token: ws.token, body: { id: ws.id, agent_card: card, url: loopback('/agent/echo/reg') } });
    expect(good.status).toBe(200);
    const [row] = await sql('SELECT url, delivery_mode FROM workspaces WHERE id = $1', [ws.id]);
    expect(row).toEqual({ url: loopback('/agent/echo/reg'), delivery_mode: 'push' });
  });

  it('issues the token once (bootstrap), then requires it', async () => {
    // An external workspace created with its URL holds no token yet: its first register mints one.
    const ws = await createWorkspace({ external: true, url: loopback('/agent/echo/bootstrap') });
    const first = await callJson('POST', '/registry/register', { body: { id: ws.id, agent_card: card, delivery_mode: 'poll' } });
    expect(first.status).toBe(200);
    expect(first.body.auth_token).toMatch(/^mws_/);

    const hijack = await callJson('POST', '/registry/register', { body: { id: ws.id, agent_card: card, delivery_mode: 'poll' } });
    expect(hijack).toMatchObject({ status: 401, body: { error: 'missing workspace auth token' } });
    const again = await callJson('POST', '/registry/register', { token: first.body.auth_token, body: { id: ws.id, agent_card: card, delivery_mode: 'poll' } });
    expect(again.status).toBe(200);
    expect(again.body.auth_token).toBeUndefined();
    const tokens = await sql('SELECT count(*)::int AS n FROM workspace_auth_tokens WHERE workspace_id = $1', [ws.id]);
    expect(tokens[0].n).toBe(1);
  });

  it('ReturnsPlatformInboundSecret on every register; NoInboundSecret omits the field', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const [row] = await sql('SELECT platform_inbound_secret FROM workspaces WHERE id = $1', [a.id]);
    const res = await callJson('POST', '/registry/register', { token: a.token, body: { id: a.id, agent_card: card } });
    expect(res.body.platform_inbound_secret).toBe(row.platform_inbound_secret);
    expect(row.platform_inbound_secret.length).toBeGreaterThanOrEqual(40);

    await sql('UPDATE workspaces SET platform_inbound_secret = NULL WHERE id = $1', [a.id]);
    const without = await callJson('POST', '/registry/register', { token: a.token, body: { id: a.id, agent_card: card } });
    expect(without.status).toBe(200);
    expect('platform_inbound_secret' in without.body).toBe(false);
  });

  it('never resurrects a removed workspace nor invents an unknown one', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    await call('DELETE', `/workspaces/${a.id}`, { token: ADMIN });
    // To a stranger a removed workspace is as unknown as one that never existed.
    expect(await callJson('POST', '/registry/register', { body: { id: a.id, agent_card: card, delivery_mode: 'poll' } })).toMatchObject({ status: 404, body: { error: 'workspace not found' } });
    // Its own (revoked) token gets 410 with the re-onboarding hint (the channel plugin and runtime print it), never a new token.
    const res = await callJson('POST', '/registry/register', { token: a.token, body: { id: a.id, agent_card: card, delivery_mode: 'poll' } });
    expect(res).toMatchObject({ status: 410, body: { error: 'workspace removed', id: a.id, hint: expect.stringContaining('Tokens tab') } });
    expect(Date.parse(res.body.removed_at)).toBeGreaterThan(0);
    expect(res.body.auth_token).toBeUndefined();
    const [row] = await sql('SELECT status FROM workspaces WHERE id = $1', [a.id]);
    expect(row.status).toBe('removed');
    const live = await sql('SELECT count(*)::int AS n FROM workspace_auth_tokens WHERE workspace_id = $1 AND revoked_at IS NULL', [a.id]);
    expect(live[0].n).toBe(0);

    const unknown = crypto.randomUUID();
    expect((await call('POST', '/registry/register', { body: { id: unknown, agent_card: card, delivery_mode: 'poll' } })).status).toBe(404);
    expect(await sql('SELECT 1 FROM workspaces WHERE id = $1', [unknown])).toHaveLength(0);
  });

  it('bad input: malformed JSON, wrong types, oversized', async () => {
    const bad = await callJson('POST', '/registry/register', { raw: '{"id":', headers: { 'Content-Type': 'application/json' } });
    expect(bad).toMatchObject({ status: 400, body: { error: 'request body must be valid JSON' } });
    const types = await callJson('POST', '/registry/register', { body: { id: 42, agent_card: 'card' } });
    expect(types.status).toBe(400);
    expect(types.body.issues.map((i: any) => i.path).sort()).toEqual(['agent_card', 'id']);
    const huge = await callJson('POST', '/registry/register', { body: { id: crypto.randomUUID(), agent_card: { blob: 'x'.repeat(300 * 1024) } } });
    expect(huge.status).toBe(413);
  });
});

describe('POST /registry/heartbeat', () => {
  it('requires the workspace bearer', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const b = await registeredAgent({ mode: 'poll' });
    expect((await call('POST', '/registry/heartbeat', { body: { workspace_id: a.id } })).status).toBe(401);
    expect((await call('POST', '/registry/heartbeat', { token: b.token, body: { workspace_id: a.id } })).status).toBe(401);
    expect((await call('POST', '/registry/heartbeat', { token: ADMIN, body: { workspace_id: a.id } })).status).toBe(401);
  });

  it('stores runtime metadata (capabilities) and liveness, clamps spend', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const res = await callJson('POST', '/registry/heartbeat', {
      token: a.token,
      body: { workspace_id: a.id, active_tasks: 2, uptime_seconds: 90, monthly_spend: 5e12, runtime_metadata: { capabilities: { session: true, status_mgmt: false }, idle_timeout_seconds: 0 } },
    });
    expect(res).toMatchObject({ status: 200, body: { status: 'ok' } });
    const [row] = await sql('SELECT runtime_metadata, active_tasks, uptime_seconds, monthly_spend::text AS spend, last_heartbeat_at FROM workspaces WHERE id = $1', [a.id]);
    expect(row.runtime_metadata).toEqual({ capabilities: { session: true, status_mgmt: false } });
    expect(row.active_tasks).toBe(2);
    expect(row.spend).toBe('1000000000000');
    expect(row.last_heartbeat_at).not.toBeNull();

    // 0 means "no update"; absent metadata clears it.
    await call('POST', '/registry/heartbeat', { token: a.token, body: { workspace_id: a.id, monthly_spend: 0 } });
    const [after] = await sql('SELECT runtime_metadata, monthly_spend::text AS spend FROM workspaces WHERE id = $1', [a.id]);
    expect(after).toEqual({ runtime_metadata: null, spend: '1000000000000' });
  });

  it('wedged flips online→degraded even with native status_mgmt; error-rate inference yields to it', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const status = async () => (await sql('SELECT status FROM workspaces WHERE id = $1', [a.id]))[0].status;
    const native = { capabilities: { status_mgmt: true } };
    await call('POST', '/registry/heartbeat', { token: a.token, body: { workspace_id: a.id, error_rate: 0.9, runtime_metadata: native } });
    expect(await status()).toBe('online');
    await call('POST', '/registry/heartbeat', { token: a.token, body: { workspace_id: a.id, error_rate: 0.9 } });
    expect(await status()).toBe('degraded');
    await call('POST', '/registry/heartbeat', { token: a.token, body: { workspace_id: a.id, error_rate: 0.01, runtime_metadata: native } });
    expect(await status()).toBe('degraded');
    await call('POST', '/registry/heartbeat', { token: a.token, body: { workspace_id: a.id, error_rate: 0.01 } });
    expect(await status()).toBe('online');
    await call('POST', '/registry/heartbeat', { token: a.token, body: { workspace_id: a.id, runtime_state: 'wedged', runtime_metadata: native } });
    expect(await status()).toBe('degraded');
  });

  it('brings an offline workspace back online and rejects bad values', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    await sql(`UPDATE workspaces SET status = 'offline' WHERE id = $1`, [a.id]);
    await call('POST', '/registry/heartbeat', { token: a.token, body: { workspace_id: a.id } });
    expect((await sql('SELECT status FROM workspaces WHERE id = $1', [a.id]))[0].status).toBe('online');
    const bad = await callJson('POST', '/registry/heartbeat', { token: a.token, body: { workspace_id: a.id, error_rate: 7, active_tasks: -1 } });
    expect(bad.status).toBe(400);
    expect(bad.body.issues.map((i: any) => i.path).sort()).toEqual(['active_tasks', 'error_rate']);
  });
});
