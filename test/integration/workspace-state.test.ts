// GET /workspaces/:id/state and GET /workspaces/:id/secrets/values: the SDK's run-loop check and
// its secret pull (clients-contract §4.10, §4.15). Calls replayed from
// Molecule-AI/molecule-sdk-python@9622f0b molecule_agent/client.py.
import { env } from 'cloudflare:test';
import { afterAll, describe, expect, it } from 'vitest';
import { encryptSecret, importSecretsKey } from '../../src/lib/secret-box';
import { ADMIN, BASE, call, callJson, createWorkspace, registeredAgent, sql } from '../support/api';

/** What `poll_state()` (client.py:540-566) makes of an answer: 404 is "removed, deleted" whatever the body. */
async function pollState(id: string, token: string | undefined) {
  const res = await callJson('GET', `/workspaces/${id}/state`, { token, headers: { Origin: BASE } });
  if (res.status === 404) return { http: 404, body: res.body, state: { status: 'removed', paused: false, deleted: true } };
  if (res.status < 200 || res.status >= 300) return { http: res.status, body: res.body, state: undefined };
  return { http: res.status, body: res.body, state: { status: String(res.body.status ?? 'unknown'), paused: Boolean(res.body.paused), deleted: Boolean(res.body.deleted) } };
}

describe('GET /workspaces/:id/state — SDK poll_state', () => {
  it('live: 200 {workspace_id, status, paused:false, deleted:false}', async () => {
    const agent = await registeredAgent({ mode: 'poll' });
    const r = await pollState(agent.id, agent.token);
    expect(r.http).toBe(200);
    expect(r.body).toEqual({ workspace_id: agent.id, status: 'online', paused: false, deleted: false });
    expect(r.state).toEqual({ status: 'online', paused: false, deleted: false });
    expect((await pollState(agent.id, ADMIN)).body).toEqual(r.body);
  });

  it('paused: paused:true (the SDK loop stops)', async () => {
    const agent = await registeredAgent({ mode: 'poll' });
    await sql(`UPDATE workspaces SET status = 'paused' WHERE id = $1`, [agent.id]);
    const r = await pollState(agent.id, agent.token);
    expect(r.http).toBe(200);
    expect(r.body).toEqual({ workspace_id: agent.id, status: 'paused', paused: true, deleted: false });
  });

  it('removed: its own (revoked) token and operators learn it is deleted (404); a stranger’s token or none is 401, never 404', async () => {
    const agent = await registeredAgent({ mode: 'poll' });
    const stranger = await registeredAgent({ mode: 'poll' });
    expect((await call('DELETE', `/workspaces/${agent.id}`, { token: ADMIN })).status).toBe(200);
    const own = await pollState(agent.id, agent.token);
    expect(own.http).toBe(404);
    expect(own.body).toEqual({ error: 'workspace removed', workspace_id: agent.id, status: 'removed', deleted: true });
    expect((await pollState(agent.id, ADMIN)).body).toEqual(own.body);
    // Whether another workspace exists or is gone is not a stranger's to learn: 401, as for any bad credential.
    for (const token of [stranger.token, undefined, 'mws_forged', 'garbage']) {
      const r = await pollState(agent.id, token);
      expect(r.http, String(token)).toBe(401);
    }
  });

  it('auth failures on a live workspace are 401 (a 404 would make the SDK exit)', async () => {
    const agent = await registeredAgent({ mode: 'poll' });
    const other = await registeredAgent({ mode: 'poll' });
    for (const token of [other.token, undefined, 'mws_forged']) expect((await pollState(agent.id, token)).http, String(token)).toBe(401);
    // A minted-then-revoked token of a live workspace is just invalid.
    const minted = await callJson('POST', `/workspaces/${agent.id}/tokens`, { token: ADMIN, body: {} });
    expect((await call('DELETE', `/workspaces/${agent.id}/tokens/${minted.body.id}`, { token: ADMIN })).status).toBe(200);
    expect((await pollState(agent.id, minted.body.auth_token)).http).toBe(401);
    // Unknown workspace: a workspace token may not probe it (401), an operator learns it does not exist.
    const unknown = crypto.randomUUID();
    expect((await pollState(unknown, agent.token)).http).toBe(401);
    const r = await pollState(unknown, ADMIN);
    expect(r.http).toBe(404);
    expect(r.body).toEqual({ error: 'workspace not found', workspace_id: unknown, deleted: true });
    expect((await callJson('GET', '/workspaces/not-a-uuid/state', { token: ADMIN })).status).toBe(400);
  });
});

describe('GET /workspaces/:id/secrets/values — SDK pull_secrets', () => {
  const globalKeys: string[] = [];
  afterAll(async () => {
    if (globalKeys.length > 0) await sql('DELETE FROM global_secrets WHERE key = ANY($1::text[])', [globalKeys]);
  });

  /** client.py:525-538: GET with bearer (+ Origin), raise_for_status(), `resp.json() or {}`. */
  const pullSecrets = (id: string, token: string) => callJson('GET', `/workspaces/${id}/secrets/values`, { token, headers: { Origin: BASE } });

  it('a workspace without secrets: 200 {}', async () => {
    const agent = await registeredAgent({ mode: 'poll' });
    const res = await pullSecrets(agent.id, agent.token);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({});
    expect(res.res.headers.get('Cache-Control')).toBe('no-store');
  });

  it('round trip from POST /workspaces secrets, as a flat {KEY: plaintext} object, not cacheable', async () => {
    const created = await createWorkspace({ external: true, delivery_mode: 'poll', secrets: { OPENAI_API_KEY: 'sk-live-123', EMPTY: '', UNICODE: 'pässwörd 😀 "quoted"\n' } });
    for (const token of [created.token!, ADMIN]) {
      const res = await pullSecrets(created.id, token);
      expect(res.status).toBe(200);
      expect(res.res.headers.get('Cache-Control')).toBe('no-store');
      expect(res.body).toEqual({ OPENAI_API_KEY: 'sk-live-123', EMPTY: '', UNICODE: 'pässwörd 😀 "quoted"\n' });
    }
  });

  it('global secrets are overlaid by the workspace’s own', async () => {
    const key = await importSecretsKey(env.SECRETS_ENCRYPTION_KEY);
    const tag = crypto.randomUUID().slice(0, 8).toUpperCase();
    const shared = `G_SHARED_${tag}`;
    const onlyGlobal = `G_ONLY_${tag}`;
    globalKeys.push(shared, onlyGlobal);
    await sql('INSERT INTO global_secrets (key, encrypted_value) VALUES ($1, $2), ($3, $4)', [shared, await encryptSecret(key, 'from-global'), onlyGlobal, await encryptSecret(key, 'global-only')]);
    const created = await createWorkspace({ external: true, delivery_mode: 'poll', secrets: { [shared]: 'from-workspace', OWN: 'own' } });
    const res = await pullSecrets(created.id, created.token!);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ [shared]: 'from-workspace', [onlyGlobal]: 'global-only', OWN: 'own' });
    // Another workspace sees the globals only.
    const other = await registeredAgent({ mode: 'poll' });
    expect((await pullSecrets(other.id, other.token)).body).toMatchObject({ [shared]: 'from-global', [onlyGlobal]: 'global-only' });
    // A global shadowed by the workspace's own is not needed, so not even opened: corrupt it and the bundle still comes back.
    await sql(`UPDATE global_secrets SET encrypted_value = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAA' WHERE key = $1`, [shared]);
    expect((await pullSecrets(created.id, created.token!)).body[shared]).toBe('from-workspace');
    const broken = await pullSecrets(other.id, other.token);
    expect(broken.status).toBe(503);
    expect(broken.body.failed_keys).toEqual([shared]);
    await sql('DELETE FROM global_secrets WHERE key = $1', [shared]);
  });

  it('a secret that cannot be decrypted: 503 naming the key, with no values at all', async () => {
    const created = await createWorkspace({ external: true, delivery_mode: 'poll', secrets: { GOOD_ONE: 'good-value-1', BAD_ONE: 'bad-value', OTHER_BAD: 'x', LATER_VERSION: 'v' } });
    const key = await importSecretsKey(env.SECRETS_ENCRYPTION_KEY);
    const valid = await encryptSecret(key, 'still-fine');
    await sql(`UPDATE secrets SET encrypted_value = 'bm90IGEgY2lwaGVydGV4dCBhdCBhbGw=' WHERE workspace_id = $1 AND key = 'BAD_ONE'`, [created.id]);
    await sql(`UPDATE secrets SET encrypted_value = '%%% not base64' WHERE workspace_id = $1 AND key = 'OTHER_BAD'`, [created.id]);
    await sql(`UPDATE secrets SET encrypted_value = $2, encryption_version = 2 WHERE workspace_id = $1 AND key = 'LATER_VERSION'`, [created.id, valid]);
    const res = await pullSecrets(created.id, created.token!);
    expect(res.status).toBe(503);
    expect(res.body.error).toBe('secrets unavailable');
    expect([...res.body.failed_keys].sort()).toEqual(['BAD_ONE', 'LATER_VERSION', 'OTHER_BAD']);
    expect(Object.keys(res.body).sort()).toEqual(['error', 'failed_keys']);
    for (const value of ['good-value-1', 'bad-value', 'still-fine']) expect(JSON.stringify(res.body)).not.toContain(value);
    expect(res.res.headers.get('Cache-Control')).toBe('no-store');
  });

  it('auth: another workspace’s token, none → 401; unknown or removed workspaces → 404 to operators; a removed workspace’s token → 401', async () => {
    const created = await createWorkspace({ external: true, delivery_mode: 'poll', secrets: { TOP: 'secret' } });
    const other = await registeredAgent({ mode: 'poll' });
    for (const token of [other.token, undefined, 'mws_forged']) {
      const res = await callJson('GET', `/workspaces/${created.id}/secrets/values`, { token });
      expect(res.status, String(token)).toBe(401);
      expect(JSON.stringify(res.body)).not.toContain('secret');
    }
    expect((await callJson('GET', `/workspaces/${crypto.randomUUID()}/secrets/values`, { token: ADMIN })).status).toBe(404);
    expect((await call('DELETE', `/workspaces/${created.id}`, { token: ADMIN })).status).toBe(200);
    expect((await callJson('GET', `/workspaces/${created.id}/secrets/values`, { token: ADMIN })).status).toBe(404);
    expect((await callJson('GET', `/workspaces/${created.id}/secrets/values`, { token: created.token })).status).toBe(401);
  });
});
