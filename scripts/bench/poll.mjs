// The poll-mode half of the bench (issue "the hot path at the edge", goals): how soon a message sent
// to a poll agent is visible to its since_id poller, and how fast a since_id page of 100 comes out
// of a large feed, both through the real Worker. Sequential, bounded, loopback only.
import { performance } from 'node:perf_hooks';
import pg from 'pg';

/**
 * `base`: the Worker. `api(method, route, token, body, expect)`: the bench's JSON helper.
 * `createExternal(name)`: a workspace with its one-time token. `feedRows`: rows seeded straight
 * into Postgres (one INSERT … SELECT) for the large-feed page timing.
 */
export async function measurePoll({ base, databaseUrl, api, createExternal, adminToken, samples, feedRows, log }) {
  const inbox = await createExternal('bench-poll-inbox');
  await api('POST', '/registry/register', inbox.token, { id: inbox.id, agent_card: { name: 'bench' }, delivery_mode: 'poll' }, 200);
  const feed = (token, id, query) => fetch(`${base}/workspaces/${id}/activity?${query}`, { headers: { Authorization: `Bearer ${token}` } });

  // 1. Send → visible to a since_id poller (the cursor is the newest row before the send).
  let cursor = (await (await feed(inbox.token, inbox.id, 'type=a2a_receive&limit=1&order=desc')).json())[0]?.id;
  const visible = [];
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    await api('POST', `/workspaces/${inbox.id}/a2a`, adminToken, { jsonrpc: '2.0', id: i, method: 'message/send', params: { message: { role: 'user', parts: [{ kind: 'text', text: `poll ${i}` }] } } }, 200);
    for (let spins = 0; ; spins++) {
      const res = await feed(inbox.token, inbox.id, cursor ? `type=a2a_receive&limit=100&since_id=${cursor}` : 'type=a2a_receive&limit=100');
      const rows = await res.json();
      if (rows.length > 0) {
        visible.push(performance.now() - t0);
        cursor = rows.at(-1).id;
        break;
      }
      if (spins > 200) throw new Error('poll bench: a queued message never became visible');
    }
  }

  // 2. A since_id page of 100 from a large feed.
  const big = await createExternal('bench-poll-feed');
  log(`seeding ${feedRows} activity rows for the large-feed page timing`);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(
      `INSERT INTO activity_logs (workspace_id, activity_type, method, summary, request_body)
       SELECT $1, 'a2a_receive', 'message/send', 'seeded', jsonb_build_object('n', g) FROM generate_series(1, $2) g`,
      [big.id, feedRows],
    );
    await client.query('ANALYZE activity_logs');
    const cursors = (await client.query(`SELECT id FROM activity_logs WHERE workspace_id = $1 ORDER BY random() LIMIT $2`, [big.id, samples])).rows.map((r) => r.id);
    const pages = [];
    for (const id of cursors) {
      const t0 = performance.now();
      const res = await feed(big.token, big.id, `type=a2a_receive&limit=100&since_id=${id}`);
      const rows = await res.json();
      if (res.status !== 200 || !Array.isArray(rows)) throw new Error(`poll bench: page answered ${res.status}`);
      pages.push(performance.now() - t0);
    }
    return { visible: stats(visible), page: stats(pages), feedRows };
  } finally {
    await client.end();
  }
}

function stats(ms) {
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
  return { n: sorted.length, p50: at(50), p99: at(99) };
}
