// The write-behind of proxied exchanges' activity rows (src/activity/writer.ts): what is accepted
// is never lost, and never written twice, whichever step of a flush dies.
import { env, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import { appendActivity } from '../../src/activity/outbox';
import { PART_CHARS, type PendingActivity, type WireEntry } from '../../src/activity/pending';
import type { ActivityWriter } from '../../src/activity/writer';
import type { Bindings } from '../../src/env';
import { registeredAgent, sql, waitFor } from '../support/api';

async function exchange() {
  const caller = await registeredAgent({ mode: 'poll' });
  const target = await registeredAgent({ mode: 'poll' });
  const base = { sourceId: caller.id, targetId: target.id, method: 'message/send', summary: 'crash test', requestBody: { n: 1 }, status: 'ok' as const };
  const entry: PendingActivity = {
    records: [
      { ...base, id: crypto.randomUUID(), workspaceId: target.id, activityType: 'a2a_receive' },
      { ...base, id: crypto.randomUUID(), workspaceId: caller.id, activityType: 'a2a_send' },
    ],
    outboundFrom: caller.id,
  };
  return { caller, target, entry, writer: env.ACTIVITY_WRITER.getByName(target.id) };
}

/** What a new instance of the writer would have: nothing in memory, no timer; only its storage. */
function forgetMemory(instance: ActivityWriter) {
  const memory = instance as unknown as { accepted: Map<string, string>; timer?: ReturnType<typeof setTimeout> };
  memory.accepted.clear();
  clearTimeout(memory.timer);
  memory.timer = undefined;
}

const rowsOf = async (ids: string[]) => (await sql('SELECT id FROM activity_logs WHERE id = ANY($1::uuid[])', [ids])).map((r) => r.id).sort();

describe('activity write-behind', () => {
  it('an exchange accepted before the request died is written by the next flush, exactly once', async () => {
    const { entry, writer } = await exchange();
    // Accepted (durable) but never flushed: the request that appended it died before any alarm ran.
    await runInDurableObject(writer, async (_instance: ActivityWriter, state) => {
      await state.storage.put('pending:000000000000001:crash', JSON.stringify(entry));
    });
    const ids = entry.records.map((r) => r.id).sort();
    expect(await rowsOf(ids)).toEqual([]);
    expect(await runInDurableObject(writer, (instance: ActivityWriter) => instance.flush())).toBe(1);
    expect(await rowsOf(ids)).toEqual(ids);
    expect(await runInDurableObject(writer, (instance: ActivityWriter) => instance.flush())).toBe(0);
    expect(await rowsOf(ids)).toEqual(ids);
  });

  it('a flush that died after its insert committed but before it cleared storage is repeated without duplicates', async () => {
    const { entry, writer, caller } = await exchange();
    const [receive] = entry.records;
    // The first flush got as far as committing one feed's row…
    await sql(`INSERT INTO activity_logs (id, workspace_id, activity_type, source_id, summary) VALUES ($1, $2, 'a2a_receive', $3, 'crash test')`, [receive!.id, receive!.workspaceId, caller.id]);
    // …and then died, leaving the entry in storage (as an older version stored it: the object itself).
    await runInDurableObject(writer, async (_instance: ActivityWriter, state) => {
      await state.storage.put('pending:000000000000002:crash', entry);
    });
    expect(await runInDurableObject(writer, (instance: ActivityWriter) => instance.flush())).toBe(1);
    const ids = entry.records.map((r) => r.id).sort();
    expect(await rowsOf(ids)).toEqual(ids);
    const [{ n }] = await sql('SELECT count(*)::int AS n FROM activity_logs WHERE id = ANY($1::uuid[])', [ids]);
    expect(n).toBe(2);
    const left = await runInDurableObject(writer, async (_instance: ActivityWriter, state) => (await state.storage.list({ prefix: 'pending:' })).size);
    expect(left).toBe(0);
  });

  it('a flush the datastore refuses keeps every entry and re-arms its alarm', async () => {
    const { entry, writer } = await exchange();
    // A row the datastore refuses (a feed that does not exist) stands in for the datastore failing.
    const refused: PendingActivity = { records: [{ ...entry.records[0]!, id: crypto.randomUUID(), workspaceId: crypto.randomUUID() }] };
    const kept = await runInDurableObject(writer, async (instance: ActivityWriter, state) => {
      await state.storage.put('pending:000000000000003:refused', refused);
      await state.storage.deleteAlarm();
      const flushed = await instance.flush();
      return { flushed, left: (await state.storage.list({ prefix: 'pending:' })).size, alarm: await state.storage.getAlarm() };
    });
    expect(kept.flushed).toBe(0);
    expect(kept.left).toBe(1);
    expect(kept.alarm).not.toBeNull();
    await runInDurableObject(writer, async (_instance: ActivityWriter, state) => {
      await state.storage.deleteAll();
    });
  });

  it('an entry the datastore never takes is found, set aside after three refusals, and the feed behind it goes on', async () => {
    const { entry, writer } = await exchange();
    const refused: PendingActivity = { records: [{ ...entry.records[0]!, id: crypto.randomUUID(), workspaceId: crypto.randomUUID() }] };
    const steps = await runInDurableObject(writer, async (instance: ActivityWriter, state) => {
      // The refused entry first, the good exchange behind it: one batch, refused as a whole.
      await state.storage.put({ 'pending:000000000000004:a': JSON.stringify(refused), 'pending:000000000000004:b': JSON.stringify(entry) });
      const flushed: number[] = [];
      for (let i = 0; i < 6; i++) flushed.push(await instance.flush());
      return {
        flushed,
        pending: [...(await state.storage.list({ prefix: 'pending:' })).keys()],
        aside: [...(await state.storage.list({ prefix: 'refused:' })).keys()],
      };
    });
    // the pair is refused; alone, the first entry is refused three times and set aside; then the good one.
    expect(steps.flushed).toEqual([0, 0, 0, 1, 1, 0]);
    expect(steps.pending).toEqual([]);
    expect(steps.aside).toEqual(['refused:000000000000004:a']);
    const ids = entry.records.map((r) => r.id).sort();
    expect(await rowsOf(ids)).toEqual(ids);
    await runInDurableObject(writer, async (_instance: ActivityWriter, state) => {
      await state.storage.deleteAll();
    });
  });

  it('an entry sent twice and flushed in one batch is written once, and its usage counted once', async () => {
    const { entry, writer, target } = await exchange();
    const withUsage: PendingActivity = { ...entry, records: [{ ...entry.records[0]!, tokenUsage: { input: 10, output: 4 } }, entry.records[1]!] };
    await runInDurableObject(writer, async (instance: ActivityWriter) => {
      await instance.append([JSON.stringify(withUsage), JSON.stringify(withUsage)]);
      await instance.flush();
    });
    const ids = entry.records.map((r) => r.id).sort();
    expect(await rowsOf(ids)).toEqual(ids);
    const usage = await sql('SELECT input_tokens::int AS i, output_tokens::int AS o, call_count::int AS n FROM workspace_token_usage WHERE workspace_id = $1', [target.id]);
    expect(usage).toEqual([{ i: 10, o: 4, n: 1 }]);
  });

  it('an accepted exchange is flushed by the instance\'s own timer, with a backstop alarm armed in case the instance dies first', async () => {
    const { entry, writer } = await exchange();
    await writer.append([JSON.stringify(entry)]);
    const alarm = await runInDurableObject(writer, (_instance: ActivityWriter, state) => state.storage.getAlarm());
    expect(alarm).not.toBeNull();
    const ids = entry.records.map((r) => r.id).sort();
    await waitFor(async () => (await rowsOf(ids)).length === 2, 2000); // the 25 ms timer, well before the 2 s backstop
    const left = await runInDurableObject(writer, async (_instance: ActivityWriter, state) => (await state.storage.list({ prefix: 'pending:' })).size);
    expect(left).toBe(0);
  });

  it('an exchange too large for one storage value is stored in parts and written whole, even by a fresh instance', async () => {
    const { entry, writer } = await exchange();
    const answer = { text: '中'.repeat(3 * PART_CHARS) }; // stored as UTF-16: two bytes a character
    const big: PendingActivity = { ...entry, shared: { responseBody: answer } };
    const stored = await runInDurableObject(writer, async (instance: ActivityWriter, state) => {
      await instance.append([JSON.stringify(big)]);
      forgetMemory(instance); // as a new instance would find it: only what storage holds
      const values = [...(await state.storage.list()).values()].filter((v) => typeof v === 'string') as string[];
      return { parts: (await state.storage.list({ prefix: 'part:' })).size, longest: Math.max(...values.map((v) => v.length)), flushed: await instance.flush() };
    });
    expect(stored.parts).toBeGreaterThanOrEqual(4);
    expect(stored.longest).toBeLessThanOrEqual(PART_CHARS); // ≤ 1 MiB a value, under SQLite's 2 MB
    expect(stored.flushed).toBe(1);
    const ids = entry.records.map((r) => r.id);
    const rows = await sql(`SELECT length(response_body->>'text') AS n FROM activity_logs WHERE id = ANY($1::uuid[])`, [ids]);
    expect(rows).toEqual([{ n: 3 * PART_CHARS }, { n: 3 * PART_CHARS }]);
    const left = await runInDurableObject(writer, async (_instance: ActivityWriter, state) => (await state.storage.list()).size);
    expect(left).toBe(0); // the entry and every part of it
  });

  it('a fresh instance takes a backlog of large entries one batch at a time, choosing by size before reading any part', async () => {
    const { target, caller, writer } = await exchange();
    const large = (n: number): PendingActivity => ({
      shared: { sourceId: caller.id, targetId: target.id, responseBody: { text: `${n}`.repeat(700 * 1024) } },
      records: [{ id: crypto.randomUUID(), workspaceId: target.id, activityType: 'a2a_receive', summary: `large ${n}` }],
    });
    const backlog = [large(1), large(2), large(3)];
    const flushed = await runInDurableObject(writer, async (instance: ActivityWriter) => {
      await instance.append(backlog.map((e) => JSON.stringify(e)));
      forgetMemory(instance);
      return [await instance.flush(), await instance.flush(), await instance.flush(), await instance.flush()];
    });
    expect(flushed).toEqual([1, 1, 1, 0]); // each one is over a batch's size on its own
    const ids = backlog.map((e) => e.records[0]!.id).sort();
    expect(await rowsOf(ids)).toEqual(ids);
  });

  it('after the backstop alarm has fired, the next append arms another', async () => {
    const { entry, writer } = await exchange();
    const second: PendingActivity = { records: entry.records.map((r) => ({ ...r, id: crypto.randomUUID() })) };
    const alarm = await runInDurableObject(writer, async (instance: ActivityWriter, state) => {
      await instance.append([JSON.stringify(entry)]);
      await state.storage.deleteAlarm(); // the runtime consumes an alarm as it runs it
      await instance.alarm();
      await instance.append([JSON.stringify(second)]);
      return state.storage.getAlarm();
    });
    expect(alarm).not.toBeNull();
    await waitFor(async () => (await rowsOf(second.records.map((r) => r.id))).length === 2, 2000);
  });

  describe('exchanges of one isolate share calls to the writer', () => {
    /**
     * The real writer behind a wrapper that records each call's size; `refuse(n, size)` may make
     * call n fail (true) or never answer ('hang'), as a cut-off request would leave it.
     */
    function wrappedEnv(refuse: (call: number, size: number) => boolean | 'hang' = () => false) {
      const calls: number[] = [];
      const wrapped = {
        ...env,
        ACTIVITY_WRITER: {
          getByName: (name: string) => ({
            append: async (entries: WireEntry[]) => {
              calls.push(entries.length);
              const refused = refuse(calls.length, entries.length);
              if (refused === 'hang') return new Promise<void>(() => {});
              if (refused) throw new Error('writer call failed');
              await env.ACTIVITY_WRITER.getByName(name).append(entries);
            },
          }),
        },
      } as unknown as Bindings;
      return { calls, env: wrapped };
    }

    async function concurrentExchanges(n: number) {
      const { target, caller } = await exchange();
      const entries: PendingActivity[] = Array.from({ length: n }, (_, i) => ({
        records: [{ id: crypto.randomUUID(), workspaceId: target.id, activityType: 'a2a_receive', sourceId: caller.id, targetId: target.id, summary: `shared ${i}`, status: 'ok' }],
      }));
      return { target, entries, ids: entries.map((e) => e.records[0]!.id).sort() };
    }

    const flushAll = async (targetId: string) => {
      const writer = env.ACTIVITY_WRITER.getByName(targetId);
      while ((await runInDurableObject(writer, (instance: ActivityWriter) => instance.flush())) > 0);
    };

    it('40 concurrent appends reach the writer in a few calls, and every row is written once', async () => {
      const { target, entries, ids } = await concurrentExchanges(40);
      const counting = wrappedEnv();
      await Promise.all(entries.map((entry) => appendActivity(counting.env, target.id, entry)));
      expect(counting.calls.reduce((a, b) => a + b, 0)).toBe(40);
      expect(counting.calls.length).toBeLessThanOrEqual(3); // the first alone, the rest together
      await flushAll(target.id);
      expect(await rowsOf(ids)).toEqual(ids);
    });

    it('when the shared call fails, every caller sends its own entry: nothing is lost', async () => {
      const { target, entries, ids } = await concurrentExchanges(20);
      const counting = wrappedEnv((_call, size) => size > 1);
      await Promise.all(entries.map((entry) => appendActivity(counting.env, target.id, entry)));
      expect(counting.calls.some((n) => n > 1)).toBe(true); // a shared call was tried…
      await flushAll(target.id);
      expect(await rowsOf(ids)).toEqual(ids); // …and its entries arrived anyway
    });
  
    it('a sender cut off mid-send does not hold the others: they send their own, and the next caller starts afresh', async () => {
      const { target, entries, ids } = await concurrentExchanges(3);
      const { env: hanging } = wrappedEnv((call) => (call === 1 ? 'hang' : false)); // the first sender's request died mid-send
      void appendActivity(hanging, target.id, entries[0]!, { ackTimeoutMs: 200 });
      await appendActivity(hanging, target.id, entries[1]!, { ackTimeoutMs: 200 }); // waited 200 ms, then sent itself
      const started = Date.now();
      await appendActivity(hanging, target.id, entries[2]!, { ackTimeoutMs: 200 }); // a fresh outbox: sent at once
      expect(Date.now() - started).toBeLessThan(150);
      await flushAll(target.id);
      expect(await rowsOf(ids.filter((id) => id !== entries[0]!.records[0]!.id).sort())).toHaveLength(2);
    });
  });
});
