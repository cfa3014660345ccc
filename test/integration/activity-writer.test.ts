// The write-behind of proxied exchanges' activity rows (src/activity/writer.ts): what is accepted
// is never lost, and never written twice, whichever step of a flush dies.
import { env, runInDurableObject } from 'cloudflare:test';
import { describe, expect, it } from 'vitest';
import type { ActivityWriter, PendingActivity } from '../../src/activity/writer';
import { registeredAgent, sql } from '../support/api';

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

const rowsOf = async (ids: string[]) => (await sql('SELECT id FROM activity_logs WHERE id = ANY($1::uuid[])', [ids])).map((r) => r.id).sort();

describe('activity write-behind', () => {
  it('an exchange accepted before the request died is written by the next flush, exactly once', async () => {
    const { entry, writer } = await exchange();
    // Accepted (durable) but never flushed: the request that appended it died before any alarm ran.
    await runInDurableObject(writer, async (_instance: ActivityWriter, state) => {
      await state.storage.put('pending:000000000000001:crash', entry);
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
    // …and then died, leaving the entry in storage.
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
});
