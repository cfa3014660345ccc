import { describe, expect, it } from 'vitest';
import committed from '../../openapi/openapi.json';
import { createApp } from '../../src/app';
import { api, fetchUndocumented } from '../support/api';

describe('the API document', () => {
  it('is served at /openapi.json and equals the committed document the client types come from', async () => {
    const res = await fetchUndocumented('/openapi.json');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(committed);
  });

  it('describes every route the app serves', () => {
    const app = createApp();
    const documented = new Set(
      Object.entries(committed.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`)),
    );
    const served = app.routes.filter((r) => r.method !== 'ALL' && !['/openapi.json', '/docs'].includes(r.path)).map((r) => `${r.method} ${r.path}`);
    expect(served.length).toBeGreaterThan(10);
    expect(served.filter((r) => !documented.has(r))).toEqual([]);
  });

  it('has a reference page at /docs', async () => {
    const res = await fetchUndocumented('/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toContain('text/html');
    expect(await res.text()).toContain('/openapi.json');
  });

  it('the typed client reaches a route by its template', async () => {
    const { data, response } = await api.GET('/health');
    expect(response.status).toBe(200);
    expect(data).toEqual({ status: 'ok', database: 'ok' });
  });
});
