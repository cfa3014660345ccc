import { describe, expect, it } from 'vitest';
import { callJson, sql } from '../support/api';

describe('smoke', () => {
  it('health reports the database', async () => {
    const { status, body } = await callJson('GET', '/health');
    expect(status).toBe(200);
    expect(body).toEqual({ status: 'ok', database: 'ok' });
    const rows = await sql('SELECT count(*)::int AS n FROM workspaces');
    expect(rows[0].n).toBeGreaterThanOrEqual(0);
  });
});
