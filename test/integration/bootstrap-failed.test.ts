// POST /admin/workspaces/:id/bootstrap-failed (SPEC §17): the control plane's bootstrap watcher
// reports a runtime that crashed before registering. The canvas (molecule-core
// canvas/src/store/canvas-events.ts) reads payload.error of WORKSPACE_PROVISION_FAILED for its
// banner; the Go handler (workspace-server handlers, BootstrapFailed) also sends log_tail and
// source, and keeps the tail in last_sample_error for the Details tab.
import { describe, expect, it } from 'vitest';
import { ADMIN, call, callJson, createWorkspace, registeredAgent, sql, uniq, waitFor } from '../support/api';
import { subscribeHub } from '../support/events';

const report = (id: string, body: unknown, token: string | undefined = ADMIN) => callJson('POST', `/admin/workspaces/${id}/bootstrap-failed`, { token, body });
const raw = (id: string, text: string) => callJson('POST', `/admin/workspaces/${id}/bootstrap-failed`, { token: ADMIN, raw: text });
const bytes = (s: string) => new TextEncoder().encode(s).byteLength;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A workspace still provisioning (an external one put there directly: no provisioner cycle races the test). */
async function provisioning(): Promise<string> {
  const ws = await createWorkspace({ external: true });
  await sql(`UPDATE workspaces SET status = 'provisioning' WHERE id = $1`, [ws.id]);
  return ws.id;
}

const stateOf = async (id: string) =>
  (await sql<{ status: string; last_sample_error: string | null }>(`SELECT status, last_sample_error FROM workspaces WHERE id = $1`, [id]))[0]!;
const failedEvents = async (id: string) =>
  (await sql<{ payload: any }>(`SELECT payload FROM structure_events WHERE workspace_id = $1 AND event_type = 'WORKSPACE_PROVISION_FAILED'`, [id])).map((r) => r.payload);

describe('POST /admin/workspaces/:id/bootstrap-failed', () => {
  it('a provisioning workspace fails, with the error and the last 8 KiB of the log, and the canvas is told', async () => {
    const id = await provisioning();
    const feed = await subscribeHub(ADMIN);
    // 10,000 multi-byte lines' worth of log: the start is cut, the traceback at the end is kept.
    const log = `${'é'.repeat(6000)}\nTraceback (most recent call last):\n  File "main.py", line 1\nImportError: no module named x\n`;
    const res = await report(id, { error: 'runtime crashed at boot', log_tail: log });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true });

    const event = await feed.next((m) => m.event === 'WORKSPACE_PROVISION_FAILED' && m.workspace_id === id);
    // The tail is not broadcast (a boot log can hold secrets); only operators read it, in the last error.
    expect(event.payload).toEqual({ error: 'runtime crashed at boot', source: 'bootstrap_watcher', log_tail_bytes: expect.any(Number) });
    const tail = (await stateOf(id)).last_sample_error!.slice('runtime crashed at boot\n\n'.length);
    expect(event.payload.log_tail_bytes).toBe(bytes(tail)); // the whole kept tail is stored
    expect(tail.startsWith('...(truncated)...\n')).toBe(true);
    const kept = tail.slice('...(truncated)...\n'.length);
    expect(bytes(kept)).toBeLessThanOrEqual(8192);
    expect(bytes(kept)).toBeGreaterThan(8190); // cut at a character boundary, not short of it
    expect(log.endsWith(kept)).toBe(true);

    const state = await stateOf(id);
    expect(state.status).toBe('failed');
    expect(state.last_sample_error!.startsWith('runtime crashed at boot\n\n...(truncated)...\n')).toBe(true);
    expect(state.last_sample_error!.endsWith('ImportError: no module named x\n')).toBe(true);
    await waitFor(async () => (await failedEvents(id)).length === 1);
    feed.close();
  });

  it('a short log is kept whole; a blank error gets the fixed default text', async () => {
    const id = await provisioning();
    const res = await report(id, { error: '   ', log_tail: 'short log\n' });
    expect(res.body).toEqual({ ok: true });
    const [payload] = await waitFor(async () => {
      const events = await failedEvents(id);
      return events.length > 0 && events;
    });
    expect(payload).toEqual({ error: 'bootstrap failed — see log_tail', source: 'bootstrap_watcher', log_tail_bytes: 10 });
    expect((await stateOf(id)).last_sample_error).toBe('bootstrap failed — see log_tail\n\nshort log\n');
    // Both fields may be left out (the Go binder's zero values).
    const other = await provisioning();
    expect((await report(other, {})).body).toEqual({ ok: true });
    expect((await stateOf(other)).status).toBe('failed');
  });

  it('operator text is made plain: no escapes or controls in the banner line, only LF and tab kept in the log', async () => {
    const id = await provisioning();
    const res = await report(id, {
      error: '\u001b[31mboom\u001b[0m\r\nsecond\tline\u0085\u2028end\u0007',
      log_tail: 'a\r\nb\rc\u2028d\te\u001b[1;32mgreen\u001b[0m\u0001\u009b\u007fz',
    });
    expect(res.status).toBe(200);
    const [payload] = await waitFor(async () => {
      const events = await failedEvents(id);
      return events.length > 0 && events;
    });
    expect(payload.error).toBe('boom second line end');
    expect((await stateOf(id)).last_sample_error).toBe('boom second line end\n\na\nb\nc\nd\tegreenz');
  });

  it('a workspace no longer provisioning is left alone (no_change), and nothing is broadcast; 50 concurrent reports fail it once', async () => {
    const online = await registeredAgent({ mode: 'poll' });
    const res = await report(online.id, { error: 'late report', log_tail: 'x' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, no_change: true });
    expect((await stateOf(online.id)).status).toBe('online');

    const id = await provisioning();
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => report(id, { error: `report ${i}`, log_tail: `log ${i}` })));
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(replies.filter((r) => r.body.no_change !== true)).toHaveLength(1);
    const winner = replies.findIndex((r) => r.body.no_change !== true);
    expect((await stateOf(id)).last_sample_error).toBe(`report ${winner}\n\nlog ${winner}`);
    await sleep(300);
    expect(await failedEvents(id)).toEqual([{ error: `report ${winner}`, source: 'bootstrap_watcher', log_tail_bytes: bytes(`log ${winner}`) }]);
  });

  it('unknown and removed workspaces are 404, a bad id 400; only operators may report', async () => {
    expect((await report(crypto.randomUUID(), { error: 'x' })).status).toBe(404);
    const removed = await provisioning();
    expect((await call('DELETE', `/workspaces/${removed}?confirm=true`, { token: ADMIN })).status).toBe(200);
    const gone = await report(removed, { error: 'x' });
    expect(gone.status).toBe(404);
    expect(gone.body).toEqual({ error: 'workspace not found' });
    expect((await report('not-a-uuid', { error: 'x' })).status).toBe(400);

    const id = await provisioning();
    const agent = await registeredAgent({ mode: 'poll' });
    expect((await callJson('POST', `/admin/workspaces/${id}/bootstrap-failed`, { body: { error: 'x' } })).status).toBe(401);
    expect((await report(id, { error: 'x' }, agent.token)).status).toBe(401);
    expect((await report(id, { error: 'x' }, 'mws_forged')).status).toBe(401);
    expect((await stateOf(id)).status).toBe('provisioning');
  });

  it('hostile bodies are small 4xx and write nothing', async () => {
    const id = await provisioning();
    const cases: [string, string, number][] = [
      ['NUL in error', JSON.stringify({ error: 'a\u0000b' }), 400],
      ['NUL in log_tail', JSON.stringify({ log_tail: 'a\u0000b' }), 400],
      ['lone surrogate', '{"error":"\\ud800"}', 400],
      ['deep JSON', `{"error":"x","log_tail":${'['.repeat(5000)}${']'.repeat(5000)}}`, 400],
      ['wrong type: error', JSON.stringify({ error: 123 }), 400],
      ['wrong type: log_tail', JSON.stringify({ log_tail: { a: 1 } }), 400],
      ['not an object', '["x"]', 400],
      ['not JSON', 'error=boom', 400],
      ['empty body', '', 400],
      ['error past 1,000 characters', JSON.stringify({ error: 'e'.repeat(1001) }), 400],
      ['log_tail past 32 KiB characters', JSON.stringify({ log_tail: 'l'.repeat(32 * 1024 + 1) }), 400],
      ['body past 64 KiB', JSON.stringify({ log_tail: 'l'.repeat(70 * 1024) }), 413],
      ['2^31 as error', '{"error":2147483648}', 400],
    ];
    for (const [name, text, status] of cases) {
      const res = await raw(id, text);
      expect(res.status, name).toBe(status);
      expect(bytes(JSON.stringify(res.body)), name).toBeLessThan(2048);
      expect(typeof res.body.error, name).toBe('string');
    }
    expect(await stateOf(id)).toEqual({ status: 'provisioning', last_sample_error: null });
    expect(await failedEvents(id)).toEqual([]);
    // Exactly at the bounds is fine.
    const tag = uniq();
    expect((await report(id, { error: `${tag}${'e'.repeat(1000 - tag.length)}`, log_tail: 'l'.repeat(32 * 1024) })).body).toEqual({ ok: true });
  });
});
