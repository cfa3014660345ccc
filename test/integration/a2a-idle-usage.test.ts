// A2A fidelity: the idle timeout (SPEC §8.7; per-workspace override from the heartbeat's
// runtime_metadata.idle_timeout_seconds, §6) and token usage from A2A answers (§8.7) with
// GET /workspaces/:id/usage.
import { env } from 'cloudflare:test';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { recordActivities } from '../../src/activity/record';
import { idleTimeoutMs, platformIdleTimeoutMs } from '../../src/a2a/idle-timeout';
import { RequestScope } from '../../src/lib/request-scope';
import { tokenUsageOf } from '../../src/usage/token-usage';
import { ADMIN, a2aMessage, call, callJson, loopback, registeredAgent, sql, uniq, waitFor } from '../support/api';

async function agentWithIdle(path: (name: string) => string, idleSeconds: number) {
  const caller = await registeredAgent({ mode: 'poll' });
  const target = await registeredAgent({ url: loopback(path(uniq())) });
  const hb = await call('POST', '/registry/heartbeat', { token: target.token, body: { workspace_id: target.id, runtime_metadata: { idle_timeout_seconds: idleSeconds } } });
  expect(hb.status).toBe(200);
  return { caller, target };
}

describe('idle timeout', () => {
  it('an agent that sends nothing for its idle window is busy (queued) long before the 60 s header deadline', async () => {
    const { caller, target } = await agentWithIdle((n) => `/agent/hang/${n}`, 1);
    const started = Date.now();
    const res = await callJson('POST', `/workspaces/${target.id}/a2a`, { token: caller.token, body: a2aMessage('are you there?') });
    const took = Date.now() - started;
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ queued: true });
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(10_000);
  });

  it('an agent that keeps streaming is never cut off by the idle window, however long it takes overall', async () => {
    // A byte every 150 ms for 2.5 s against a 1 s idle window.
    const { caller, target } = await agentWithIdle((n) => `/agent/drip/150/2500/${n}`, 1);
    const res = await callJson('POST', `/workspaces/${target.id}/a2a`, { token: caller.token, body: a2aMessage('long job') });
    expect(res.status).toBe(200);
    expect(res.body.result).toMatchObject({ dripped: true });
  });

  it('an agent that goes silent after its headers: the body is unreadable, delivery confirmed', async () => {
    const { caller, target } = await agentWithIdle((n) => `/agent/stall/${n}`, 1);
    const res = await callJson('POST', `/workspaces/${target.id}/a2a`, { token: caller.token, body: a2aMessage() });
    expect(res.status).toBe(502);
    expect(res.body).toMatchObject({ error: 'failed to read agent response', delivery_confirmed: true });
  });

  it('a small framed answer that stalls mid-body is let go once its window has passed since the headers', async () => {
    const { caller, target } = await agentWithIdle((n) => `/agent/stall-framed/${n}`, 1);
    const started = Date.now();
    const res = await callJson('POST', `/workspaces/${target.id}/a2a`, { token: caller.token, body: a2aMessage() });
    expect(res.status).toBe(502);
    expect(res.body).toMatchObject({ error: 'failed to read agent response', delivery_confirmed: true });
    expect(Date.now() - started).toBeLessThan(10_000); // the 1 s window, not the 60 s header deadline or the 30 min ceiling
  });

  describe('the window', () => {
    afterEach(() => vi.restoreAllMocks());

    it('the heartbeat override wins; A2A_IDLE_TIMEOUT_SECONDS otherwise; 5 minutes by default', () => {
      expect(idleTimeoutMs({}, { runtime_metadata: { idle_timeout_seconds: 42 } })).toBe(42_000);
      expect(idleTimeoutMs({ A2A_IDLE_TIMEOUT_SECONDS: '90' }, { runtime_metadata: { idle_timeout_seconds: 42 } })).toBe(42_000);
      expect(idleTimeoutMs({ A2A_IDLE_TIMEOUT_SECONDS: '90' }, { runtime_metadata: null })).toBe(90_000);
      expect(idleTimeoutMs({}, { runtime_metadata: { capabilities: {} } })).toBe(300_000);
      // The heartbeat accepts up to 2^31-1 seconds; the timer must not overflow into "fire now".
      expect(idleTimeoutMs({}, { runtime_metadata: { idle_timeout_seconds: 2 ** 31 - 1 } })).toBe(24 * 3600_000);
    });

    it('an invalid A2A_IDLE_TIMEOUT_SECONDS is logged and the default used', () => {
      const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
      for (const bad of ['0', '-5', '1.5', 'abc', '1e3', '99999999999']) {
        expect(platformIdleTimeoutMs({ A2A_IDLE_TIMEOUT_SECONDS: bad })).toBe(300_000);
      }
      expect(warn).toHaveBeenCalled();
      expect(String(warn.mock.calls[0]![0])).toContain('A2A_IDLE_TIMEOUT_SECONDS');
    });
  });
});

const usageOf = (id: string, token = ADMIN, query = '') => callJson('GET', `/workspaces/${id}/usage${query}`, { token });

describe('token usage', () => {
  it('result.usage, else top-level usage, summed per workspace per day; junk is ignored', async () => {
    const caller = await registeredAgent({ mode: 'poll' });
    const target = await registeredAgent({ url: loopback(`/agent/answer/${uniq()}`) });
    const answers = [
      { jsonrpc: '2.0', id: 1, result: { kind: 'message', usage: { input_tokens: 10, output_tokens: 5 } } },
      { jsonrpc: '2.0', id: 2, result: { kind: 'message' }, usage: { input_tokens: 1, output_tokens: 2 } },
      // result.usage wins over the top level
      { jsonrpc: '2.0', id: 3, result: { usage: { input_tokens: 100, output_tokens: 0 } }, usage: { input_tokens: 5000, output_tokens: 5000 } },
      // nothing countable: no call either
      { jsonrpc: '2.0', id: 4, result: { usage: { input_tokens: -1, output_tokens: 1.5 } } },
      { jsonrpc: '2.0', id: 5, result: { usage: { input_tokens: '7', output_tokens: 2 ** 53 } } },
      { jsonrpc: '2.0', id: 6, result: { usage: [1, 2] } },
      { jsonrpc: '2.0', id: 7, result: { usage: { input_tokens: 0, output_tokens: 0 } } },
    ];
    for (const answer of answers) {
      const res = await callJson('POST', `/workspaces/${target.id}/a2a`, { token: caller.token, body: a2aMessage('count me', { metadata: { answer } }) });
      expect(res.status).toBe(200);
    }
    const usage = await waitFor(async () => {
      const res = await usageOf(target.id);
      return res.body.totals?.call_count === 3 && res;
    });
    expect(usage.status).toBe(200);
    expect(usage.body.workspace_id).toBe(target.id);
    expect(usage.body.periods).toHaveLength(1);
    expect(usage.body.periods[0]).toMatchObject({ period_start: new Date().toISOString().slice(0, 10), input_tokens: 111, output_tokens: 7, call_count: 3 });
    expect(usage.body.totals).toEqual({ input_tokens: 111, output_tokens: 7, call_count: 3 });
    // The caller spent nothing: usage belongs to the agent that answered.
    expect((await usageOf(caller.id)).body).toMatchObject({ periods: [], totals: { input_tokens: 0, output_tokens: 0, call_count: 0 } });
  });

  it('a repeated write-behind flush counts an exchange once; totals saturate instead of failing the flush', async () => {
    const ws = await registeredAgent({ mode: 'poll' });
    const scope = new RequestScope(env);
    try {
      const record = { id: crypto.randomUUID(), workspaceId: ws.id, activityType: 'a2a_receive' as const, summary: 'x', tokenUsage: { input: 4, output: 6 } };
      await recordActivities(scope, [record]);
      await recordActivities(scope, [record]);
      expect((await usageOf(ws.id)).body.totals).toEqual({ input_tokens: 4, output_tokens: 6, call_count: 1 });

      await sql(`UPDATE workspace_token_usage SET input_tokens = 9223372036854775800 WHERE workspace_id = $1`, [ws.id]);
      await recordActivities(scope, [{ ...record, id: crypto.randomUUID(), tokenUsage: { input: Number.MAX_SAFE_INTEGER, output: 1 } }]);
      const [row] = await sql(`SELECT input_tokens::text AS input, output_tokens::text AS output, call_count::int AS calls FROM workspace_token_usage WHERE workspace_id = $1`, [ws.id]);
      expect(row).toEqual({ input: '9223372036854775807', output: '7', calls: 2 });
    } finally {
      await scope.close();
    }
  });

  it('parses only non-negative safe integers', () => {
    expect(tokenUsageOf({ result: { usage: { input_tokens: 3 } } })).toEqual({ input: 3, output: 0 });
    expect(tokenUsageOf({ usage: { output_tokens: 2 } })).toEqual({ input: 0, output: 2 });
    expect(tokenUsageOf({ result: 'text', usage: { input_tokens: 1, output_tokens: 1 } })).toEqual({ input: 1, output: 1 });
    for (const junk of [null, 'x', [], { usage: null }, { usage: { input_tokens: NaN } }, { usage: { input_tokens: Infinity } }, { result: { usage: { input_tokens: -0.5 } } }]) {
      expect(tokenUsageOf(junk)).toBeUndefined();
    }
  });

  it('GET /workspaces/:id/usage: operators or the own token; bad ids 400, unknown and removed 404; bounded query', async () => {
    const a = await registeredAgent({ mode: 'poll' });
    const b = await registeredAgent({ mode: 'poll' });
    expect((await usageOf(a.id, a.token)).status).toBe(200);
    expect((await call('GET', `/workspaces/${a.id}/usage`)).status).toBe(401);
    expect((await usageOf(a.id, b.token)).status).toBe(401);
    expect((await usageOf('not-a-uuid')).status).toBe(400);
    expect((await usageOf(crypto.randomUUID())).status).toBe(404);
    for (const bad of ['?days=0', '?days=-1', '?days=abc', '?days=1.5', '?limit=0', '?limit=1e3', '?limit=%00', '?days=99999999999999999999']) {
      expect((await usageOf(a.id, ADMIN, bad)).status, bad).toBe(400);
    }
    expect((await usageOf(a.id, ADMIN, '?days=99999&limit=99999')).status).toBe(200);
    await sql(`INSERT INTO workspace_token_usage (workspace_id, period_start, input_tokens, output_tokens, call_count) VALUES
      ($1, (now() AT TIME ZONE 'UTC')::date, 1, 1, 1), ($1, (now() AT TIME ZONE 'UTC')::date - 1, 2, 2, 2), ($1, (now() AT TIME ZONE 'UTC')::date - 40, 4, 4, 4)`, [a.id]);
    const recent = await usageOf(a.id);
    expect(recent.body.periods.map((p: any) => p.call_count)).toEqual([1, 2]);
    expect(recent.body.totals.call_count).toBe(3);
    expect((await usageOf(a.id, ADMIN, '?days=60')).body.periods.map((p: any) => p.call_count)).toEqual([1, 2, 4]);
    expect((await usageOf(a.id, ADMIN, '?days=60&limit=1')).body.periods.map((p: any) => p.call_count)).toEqual([1]);
    expect((await call('DELETE', `/workspaces/${a.id}?confirm=true`, { token: ADMIN })).status).toBe(200);
    expect((await usageOf(a.id)).status).toBe(404);
  });
});
