import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test';
import { describe, expect, it, vi } from 'vitest';
import worker from '../../src/index';
import { BASE, callJson, sql } from '../support/api';

describe('smoke', () => {
  it('health reports the database', async () => {
    const { status, body } = await callJson('GET', '/health');
    expect(status).toBe(200);
    expect(body).toEqual({ status: 'ok', database: 'ok' });
    const rows = await sql('SELECT count(*)::int AS n FROM workspaces');
    expect(rows[0].n).toBeGreaterThanOrEqual(0);
  });

  it('health says the database is unreachable with a fixed body; the driver text goes to the log only', async () => {
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
    const ctx = createExecutionContext();
    const unreachable = { ...env, DATABASE_URL: 'postgres://nobody:secret-pw@127.0.0.1:1/nowhere' };
    const res = await worker.fetch(new Request(`${BASE}/health`), unreachable, ctx);
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(503);
    expect(await res.text()).toBe(JSON.stringify({ status: 'degraded', database: 'unreachable' }));
    expect(logged.mock.calls.some(([line]) => line === 'health: database unreachable')).toBe(true);
    logged.mockRestore();
  });
});
