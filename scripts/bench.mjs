// `npm run bench`: A2A proxy overhead, measured end to end on this machine, in production's shape.
//
// Starts a private stack (embedded Postgres + relay, a throwaway database) and a keep-alive echo
// agent; builds the deploy bundle (`wrangler deploy --dry-run`) and serves it from one plain
// `workerd` process on a direct socket, next to a do-nothing "floor" Worker on a second socket
// (reads the body, fetches the agent, returns its answer). Then it fires the same fixed number of
// A2A requests at the same concurrency down three paths:
//   direct   load generator -> echo agent
//   floor    load generator -> floor Worker (workerd) -> echo agent
//   proxied  load generator -> POST /workspaces/:id/a2a (the real Worker) -> echo agent
// and reports throughput, latency, CPU per request by process, and how many Postgres round trips
// (Parse/Query messages the relay sees) and relay WebSocket connections each proxied request costs,
// before dispatch to the agent and in total. All traffic stays on 127.0.0.1. The last stdout line is
//   BENCH proxied_ratio=<x> floor_ratio=<y> db_hot=<n> db_total=<m> cpu_ms=<c>
//
// Env: BENCH_REQUESTS (2000 per path), BENCH_CONCURRENCY (32), BENCH_ROUNDS (4, interleaved),
//      BENCH_WARMUP (200), BENCH_SEQUENTIAL (50), BENCH_PHASE_TIMEOUT_S (60, per load phase), BENCH_TIMEOUT_S (300, whole run),
//      BENCH_POLL_SAMPLES (50), BENCH_FEED_ROWS (1000000: the large feed the since_id page timing reads).
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildBundle, startWorkerd, workerdBinary, wranglerCompat, wranglerDurableObjects, wranglerVars, writeWorkerdConfig } from './bench/workerd.mjs';
import { freePort } from './lib/local-postgres.mjs';
import { ROOT, startStack } from './lib/stack.mjs';
import { measurePoll } from './bench/poll.mjs';

const REQUESTS = intEnv('BENCH_REQUESTS', 2000, 1, 1_000_000);
const CONCURRENCY = intEnv('BENCH_CONCURRENCY', 32, 1, 1024);
const WARMUP = intEnv('BENCH_WARMUP', 200, 0, 100_000);
const ROUNDS = intEnv('BENCH_ROUNDS', 4, 1, 100);
const SEQUENTIAL = intEnv('BENCH_SEQUENTIAL', 50, 1, 10_000);
const POLL_SAMPLES = intEnv('BENCH_POLL_SAMPLES', 50, 1, 10_000);
const FEED_ROWS = intEnv('BENCH_FEED_ROWS', 1_000_000, 100, 20_000_000);
const PHASE_TIMEOUT_MS = intEnv('BENCH_PHASE_TIMEOUT_S', 60, 1, 3600) * 1000;
const RUN_TIMEOUT_MS = intEnv('BENCH_TIMEOUT_S', 300, 10, 7200) * 1000;
const REQUEST_TIMEOUT_MS = 15_000;
const READY_TIMEOUT_MS = 60_000;
const ADMIN_TOKEN = 'bench-admin';
const MAX_ERROR_RATE = 0.01;

const started = performance.now();
const log = (msg) => console.log(`[bench ${((performance.now() - started) / 1000).toFixed(1).padStart(5)}s] ${msg}`);

// ---- cleanup: LIFO, idempotent, also on errors and signals ------------------------------------

const cleanups = [];
let cleaning;
function onCleanup(label, fn) {
  cleanups.push({ label, fn });
}
function cleanup() {
  cleaning ??= (async () => {
    for (const { label, fn } of cleanups.reverse()) {
      try {
        await withTimeout(Promise.resolve().then(fn), 20_000, `cleanup: ${label}`);
      } catch (err) {
        console.error(`[bench] cleanup step "${label}" failed: ${err?.message ?? err}`);
      }
    }
  })();
  return cleaning;
}
let exitCode;
async function exitWith(code) {
  exitCode ??= code; // the first reason wins (e.g. SIGINT while main() is still unwinding)
  await cleanup();
  process.exit(exitCode);
}
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n[bench] ${signal}: cleaning up`);
    void exitWith(130);
  });
}
process.on('unhandledRejection', (err) => {
  console.error('[bench] unhandled rejection:', err);
  void exitWith(1);
});
const watchdog = setTimeout(() => {
  console.error(`[bench] whole run exceeded ${RUN_TIMEOUT_MS / 1000} s (BENCH_TIMEOUT_S): aborting`);
  void exitWith(1);
}, RUN_TIMEOUT_MS);
watchdog.unref();

// ---- main -------------------------------------------------------------------------------------

try {
  const code = await main();
  await exitWith(code);
} catch (err) {
  console.error(`\n[bench] FAILED: ${err?.stack ?? err}`);
  await exitWith(1);
}

async function main() {
  const wranglerVersion = readJson(path.join(ROOT, 'node_modules', 'wrangler', 'package.json')).version;
  const workerd = workerdBinary(ROOT);
  const cpus = os.cpus();
  const loadBefore = os.loadavg();
  log(`requests=${REQUESTS} concurrency=${CONCURRENCY} warmup=${WARMUP} sequential=${SEQUENTIAL}; ${cpus.length} CPUs, node ${process.version}, wrangler ${wranglerVersion}, workerd ${workerd.version}; load ${fmtLoad(loadBefore)}`);

  // Private temp area: Postgres cluster, bundle + workerd config, Durable Object storage, wrangler's TMPDIR.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'molecule-bench-'));
  fs.chmodSync(tmp, 0o755); // embedded Postgres runs as `postgres` when we are root: it must traverse this.
  onCleanup('remove temp dir', () => fs.rmSync(tmp, { recursive: true, force: true }));

  // 1. The deploy bundle, exactly what `wrangler deploy` would upload.
  log('building the deploy bundle (wrangler deploy --dry-run)');
  const bundle = await buildBundle({ root: ROOT, outdir: path.join(tmp, 'bundle'), env: quietWranglerEnv(tmp, wranglerVersion), onCleanup });
  log(`bundle: ${bundle.modules.map((m) => m.name).join(', ')}; ${(bundle.rawBytes / 1024).toFixed(1)} KiB, gzip ${(bundle.gzipBytes / 1024).toFixed(1)} KiB`);

  // 2. Stack. A DATABASE_URL in the environment would make startStack use that database instead;
  // the bench always wants its own throwaway cluster (and never traffic off this machine).
  if (process.env.DATABASE_URL) log('ignoring DATABASE_URL from the environment: the bench uses a private embedded cluster');
  delete process.env.DATABASE_URL;
  const pgLog = ring(100);
  log('starting embedded Postgres + relay (fresh database "bench")');
  const stack = await startStack({ dataDir: path.join(tmp, 'data'), database: 'bench', fresh: true, log: (m) => pgLog.push(m) }).catch((err) => {
    console.error(pgLog.lines().join('\n'));
    throw err;
  });
  onCleanup('stop stack', () => stack.stop());
  log(`stack ready: ${stack.databaseUrl.replace(/\/\/[^@]*@/, '//')} via relay ${stack.wsProxy}`);
  const stats = stack.relay.stats;

  // 3. Echo agent. It notes the relay's query count when each request reaches it: the round trips
  // a proxied request made before it was dispatched.
  const echo = await startEchoAgent({ probe: () => stats.queries });
  onCleanup('close echo agent', () => echo.close());
  log(`echo agent on 127.0.0.1:${echo.port}`);
  const directUrl = `http://127.0.0.1:${echo.port}/`;

  // 4. workerd: the real Worker and the floor Worker, one process.
  const port = await freePort();
  const floorPort = await freePort();
  const doDir = path.join(tmp, 'do-storage');
  fs.mkdirSync(doDir);
  const configFile = writeWorkerdConfig({
    bundle,
    port,
    floorPort,
    doDir,
    compat: wranglerCompat(ROOT),
    durableObjects: wranglerDurableObjects(ROOT),
    agentUrl: directUrl,
    bindings: {
      ...wranglerVars(ROOT),
      DATABASE_URL: stack.databaseUrl,
      NEON_WS_PROXY: stack.wsProxy,
      ADMIN_TOKEN,
      MOLECULE_ENV: 'development', // loopback agent URLs pass the SSRF guard
      SECRETS_ENCRYPTION_KEY: crypto.randomBytes(32).toString('base64'),
    },
  });
  const base = `http://127.0.0.1:${port}`;
  const workerdOutput = ring(200);
  log(`starting workerd (${path.relative(ROOT, workerd.bin)})`);
  const worker = await startWorkerd({ bin: workerd.bin, configFile, readyUrl: `${base}/health`, readyTimeoutMs: READY_TIMEOUT_MS, output: workerdOutput }).catch((err) => {
    console.error(`[bench] workerd output:\n${workerdOutput.lines().join('\n')}`);
    throw err;
  });
  onCleanup('stop workerd', () => worker.stop());
  log(`workerd ready: Worker on ${base}, floor Worker on 127.0.0.1:${floorPort}`);

  // 5. Workspaces: A (caller, poll mode, holds its token) and B (target, push to the echo agent).
  const a = await createExternal(base, 'bench-caller');
  const b = await createExternal(base, 'bench-target');
  await api(base, 'POST', '/registry/register', b.token, { id: b.id, url: directUrl, agent_card: { name: 'bench' } }, 200);
  await api(base, 'POST', '/registry/register', a.token, { id: a.id, agent_card: { name: 'bench' }, delivery_mode: 'poll' }, 200);
  log(`workspaces: A=${a.id} (caller, poll)  B=${b.id} (target, push -> echo)`);

  const jsonHeaders = { 'Content-Type': 'application/json' };
  const proxiedUrl = `${base}/workspaces/${b.id}/a2a`;
  const proxiedHeaders = { ...jsonHeaders, Authorization: `Bearer ${a.token}` };
  const paths = {
    direct: (n) => sendA2A(directUrl, jsonHeaders, n),
    floor: (n) => sendA2A(`http://127.0.0.1:${floorPort}/`, jsonHeaders, n),
    proxied: (n) => sendA2A(proxiedUrl, proxiedHeaders, n),
  };

  // Smoke tests: each path must come back 200 from the agent, or nothing below means anything.
  // The first proxied request is also the cold one (fresh isolate caches): its DB round trips.
  await settle(stats, 'queries', 300, 3000);
  const cold = await measureOne(paths.proxied, 0, stats, echo);
  if (!cold.ok) throw new Error(`proxied smoke request failed: ${cold.error}`);
  for (const name of ['floor', 'direct']) {
    const r = await paths[name](0);
    if (!r.ok) throw new Error(`${name} smoke request failed: ${r.error}`);
  }

  // 6. Warm-up (every path), then the measured runs.
  let warmupErrors = 0;
  if (WARMUP > 0) {
    log(`warm-up: ${WARMUP} requests per path at concurrency ${CONCURRENCY}`);
    for (const name of ['proxied', 'floor', 'direct']) {
      const w = await runLoad(`warm-up ${name}`, paths[name], WARMUP, CONCURRENCY);
      const failed = w.errors + (w.requested - w.completed);
      if (failed) log(`warm-up ${name}: ${failed} failed requests: ${formatErrorSamples(w.errorSamples)}`);
      warmupErrors += failed;
    }
  }
  await settle(stats, 'queries', 2000, 5000); // let warm-up's background writes land first

  // Measured runs, interleaved: ROUNDS rounds of REQUESTS/ROUNDS per path (path order rotating),
  // so drift in what else this machine runs hits all three paths alike.
  const cpu = cpuMeter({ workerdPid: worker.pid, pgDataDir: path.join(tmp, 'data') });
  const runs = Object.fromEntries(['direct', 'floor', 'proxied'].map((k) => [k, emptyRun()]));
  const db = { response: 0, total: 0, connResponse: 0, connTotal: 0, agentHits: 0, stillMoving: false };
  const rounds = Math.min(ROUNDS, REQUESTS);
  log(`measured runs: ${REQUESTS} requests per path at concurrency ${CONCURRENCY}, in ${rounds} interleaved rounds`);
  for (let r = 0; r < rounds && !interrupted; r++) {
    const chunk = Math.floor(REQUESTS / rounds) + (r < REQUESTS % rounds ? 1 : 0);
    const order = ['proxied', 'floor', 'direct'];
    for (const name of [...order.slice(r % 3), ...order.slice(0, r % 3)]) {
      const before = cpu.sample();
      const q0 = stats.queries;
      const c0 = stats.connections;
      const hits0 = echo.hits;
      const part = await runLoad(`${name} round ${r + 1}`, paths[name], chunk, CONCURRENCY);
      if (name === 'proxied') {
        db.agentHits += echo.hits - hits0;
        db.response += stats.queries - q0;
        db.connResponse += stats.connections - c0;
        // waitUntil work (activity rows etc.) lands after the responses; its CPU belongs to the run.
        db.stillMoving ||= await settle(stats, 'queries', 500, 5000);
        db.total += stats.queries - q0;
        db.connTotal += stats.connections - c0;
      }
      mergeRun(runs[name], part, cpu.delta(before, cpu.sample()));
    }
  }

  log(`poll mode: ${POLL_SAMPLES} send → visible samples, then since_id pages from a ${FEED_ROWS}-row feed`);
  const poll = await measurePoll({
    base,
    databaseUrl: stack.databaseUrl,
    api: (method, route, token, body, expect) => api(base, method, route, token, body, expect),
    createExternal: (name) => createExternal(base, name),
    adminToken: ADMIN_TOKEN,
    samples: POLL_SAMPLES,
    feedRows: FEED_ROWS,
    log,
  });

  log(`sequential: ${SEQUENTIAL} proxied requests, one at a time, waiting for the DB to go quiet between them`);
  const seq = await runSequential(paths.proxied, stats, echo, SEQUENTIAL);
  if (worker.exited) throw new Error(`workerd exited during the run (code ${worker.exited.code}, signal ${worker.exited.signal})`);

  // 7. Report.
  const s = Object.fromEntries(Object.entries(runs).map(([k, run]) => [k, summarize(run)]));
  const n = runs.proxied.completed || 1;
  const ratio = (k) => s[k].rps / s.direct.rps;
  const lines = [];
  const out = (line = '') => lines.push(line);
  out();
  out('=== molecule-edge A2A proxy bench ===');
  out(`machine: ${cpus.length} CPUs (${cpus[0]?.model?.trim() ?? 'unknown'}), ${os.platform()} ${os.arch()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM; ` +
    `load average ${fmtLoad(loadBefore)} at start, ${fmtLoad(os.loadavg())} now (1/5/15 min; other processes compete for the same cores)`);
  out(`runtime: node ${process.version}; deploy bundle (wrangler ${wranglerVersion} --dry-run, ${(bundle.rawBytes / 1024).toFixed(1)} KiB, gzip ${(bundle.gzipBytes / 1024).toFixed(1)} KiB) ` +
    `in one workerd ${workerd.version} on a direct socket; Durable Objects on local SQLite; embedded Postgres via WebSocket relay`);
  out(`load: global fetch (keep-alive), ${REQUESTS} requests per path at concurrency ${CONCURRENCY} in ${rounds} interleaved rounds, after ${WARMUP} warm-up requests per path`);
  out();
  const order = ['direct', 'floor', 'proxied'];
  out(table(
    ['path', 'requests', 'conc', 'errors', 'req/s', 'vs direct', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'],
    order.map((k) => [k, runs[k].completed, CONCURRENCY, runs[k].errors, s[k].rps.toFixed(1), `${ratio(k).toFixed(3)}x`,
      s[k].p50.toFixed(2), s[k].p90.toFixed(2), s[k].p99.toFixed(2), s[k].max.toFixed(2)]),
  ));
  out(`proxy adds ~${(s.proxied.p50 - s.direct.p50).toFixed(2)} ms at p50 over direct (floor: ~${(s.floor.p50 - s.direct.p50).toFixed(2)} ms)`);
  out(`agent deliveries during the proxied runs: ${db.agentHits} for ${runs.proxied.completed} proxied requests`);
  out();
  if (cpu.available) {
    out('CPU ms per request during the measured runs (from /proc; proxied includes its background work until the DB went quiet):');
    out(table(
      ['path', 'workerd', 'postgres', 'bench process*', 'total', 'cores busy**'],
      order.map((k) => {
        const c = runs[k].cpu;
        const per = (ms) => (ms / (runs[k].completed || 1)).toFixed(2);
        return [k, per(c.workerd), per(c.postgres), per(c.self), per(c.total), (c.total / runs[k].elapsedMs).toFixed(2)];
      }),
    ));
    out(`  * the bench process is the load generator, the echo agent and the Postgres WebSocket relay`);
    out(`  ** CPU of these processes / wall time of the load phase, out of ${cpus.length} cores`);
    out();
  }
  const kv = (label, value, extra = '') => out(`  ${label.padEnd(64)} ${value}${extra}`);
  out('DB round trips per proxied request (Parse/Query messages + HTTP queries seen by the relay):');
  kv('first proxied request (fresh isolate, after setup), before dispatch:', cold.beforeDispatch);
  kv('first proxied request (fresh isolate, after setup), total:', cold.total);
  kv(`sequential ${seq.done} (warm), before dispatch to the agent:`, seq.beforeDispatch.toFixed(2));
  kv(`sequential ${seq.done} (warm), before the response reached the client:`, seq.responsePath.toFixed(2));
  kv(`sequential ${seq.done} (warm), total (incl. background / waitUntil):`, seq.total.toFixed(2), seq.errors ? `  (${seq.errors} of ${SEQUENTIAL} failed)` : '');
  kv('concurrent runs, by the time the last response arrived:', (db.response / n).toFixed(2));
  kv('concurrent runs, total once the DB went quiet:', (db.total / n).toFixed(2), db.stillMoving ? '  (still moving after 5 s)' : '');
  out('Relay WebSocket connections (Postgres sessions) per proxied request:');
  kv('concurrent runs (once quiet):', (db.connTotal / n).toFixed(2), `  (${(db.connResponse / n).toFixed(2)} by the last response)`);
  kv(`sequential ${seq.done}:`, seq.connections.toFixed(2));
  out(`Sequential proxied latency (one request at a time): p50 ${seq.p50.toFixed(2)} ms`);
  out(`Poll mode (through the Worker, sequential): send → visible to a since_id poller p50 ${poll.visible.p50.toFixed(2)} ms, p99 ${poll.visible.p99.toFixed(2)} ms (${poll.visible.n} samples);`);
  out(`  a since_id page of 100 from a ${poll.feedRows}-row feed p50 ${poll.page.p50.toFixed(2)} ms, p99 ${poll.page.p99.toFixed(2)} ms (${poll.page.n} random cursors)`);
  for (const k of order) {
    const run = runs[k];
    if (run.errors) out(`errors (${k}): ${formatErrorSamples(run.errorSamples)}`);
    if (run.completed < run.requested) out(`INCOMPLETE (${k}): only ${run.completed} of ${run.requested} requests finished (phase limit ${PHASE_TIMEOUT_MS / 1000} s per round)`);
  }
  if (warmupErrors) out(`warm-up failures: ${warmupErrors}`);
  const logged = workerdOutput.count;
  if (logged) out(`workerd logged ${logged} line(s) during the bench; last: ${workerdOutput.lines().at(-1)?.slice(0, 300)}`);
  out(`total bench time: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const cpuMs = cpu.available ? (runs.proxied.cpu.total / n).toFixed(2) : 'NaN';
  out(`BENCH proxied_ratio=${ratio('proxied').toFixed(3)} floor_ratio=${ratio('floor').toFixed(3)} db_hot=${seq.beforeDispatch.toFixed(2)} db_total=${(db.total / n).toFixed(2)} cpu_ms=${cpuMs}`);
  console.log(lines.join('\n'));

  const failed = [];
  for (const k of order) {
    const run = runs[k];
    if (run.completed < run.requested) failed.push(`${k} run incomplete`);
    else if (run.errors / run.requested > MAX_ERROR_RATE) failed.push(`${k} error rate ${((100 * run.errors) / run.requested).toFixed(2)}% > 1%`);
  }
  if (seq.errors / SEQUENTIAL > MAX_ERROR_RATE) failed.push(`sequential error rate ${((100 * seq.errors) / SEQUENTIAL).toFixed(0)}% > 1%`);
  if (failed.length) {
    console.error(`\n[bench] FAILED: ${failed.join('; ')}`);
    const tail = workerdOutput.lines().slice(-30);
    if (tail.length) console.error(`[bench] last workerd output:\n${tail.join('\n')}`);
    return 1;
  }
  return 0;
}

/** Environment for wrangler that keeps it off the network (no metrics, no update check, no cf.json). */
function quietWranglerEnv(tmp, wranglerVersion) {
  const wranglerTmp = path.join(tmp, 'wrangler-tmp');
  fs.mkdirSync(path.join(wranglerTmp, 'update-check'), { recursive: true });
  fs.writeFileSync(path.join(wranglerTmp, 'update-check', 'wrangler-latest.json'), JSON.stringify({ latest: wranglerVersion, lastUpdate: Date.now() }));
  const env = {
    ...process.env,
    TMPDIR: wranglerTmp,
    WRANGLER_SEND_METRICS: 'false',
    WRANGLER_SEND_ERROR_REPORTS: 'false',
    WRANGLER_HIDE_BANNER: 'true',
    DO_NOT_TRACK: '1',
    CLOUDFLARE_CF_FETCH_ENABLED: 'false',
  };
  delete env.DATABASE_URL;
  return env;
}

// ---- load generation ---------------------------------------------------------------------------

/** One A2A message/send; ok only for a 2xx whose body is the echo agent's JSON-RPC result. */
async function sendA2A(url, headers, n) {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: String(n),
    method: 'message/send',
    params: { message: { role: 'user', messageId: crypto.randomUUID(), parts: [{ kind: 'text', text: 'hello' }] } },
  });
  let res;
  let text;
  try {
    res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    text = await res.text();
  } catch (err) {
    return { ok: false, error: `transport: ${err?.cause?.code ?? err?.name ?? 'error'} ${err?.message ?? err}` };
  }
  if (res.status < 200 || res.status > 299) return { ok: false, error: `HTTP ${res.status} ${text.slice(0, 200)}` };
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, error: `HTTP ${res.status} non-JSON body ${text.slice(0, 120)}` };
  }
  if (parsed?.result?.ok !== true) return { ok: false, error: `HTTP ${res.status} unexpected body ${text.slice(0, 200)}` };
  return { ok: true };
}

/** `total` requests from `concurrency` workers, bounded by PHASE_TIMEOUT_MS. */
async function runLoad(label, send, total, concurrency) {
  const latencies = new Float64Array(total);
  const errorSamples = new Map();
  let next = 0;
  let completed = 0;
  let errors = 0;
  const t0 = performance.now();
  const stopAt = t0 + PHASE_TIMEOUT_MS;
  async function loop() {
    while (next < total && !interrupted && performance.now() < stopAt) {
      const i = next++;
      const s = performance.now();
      const result = await send(i);
      latencies[completed++] = performance.now() - s;
      if (!result.ok) {
        errors += 1;
        errorSamples.set(result.error, (errorSamples.get(result.error) ?? 0) + 1);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, loop));
  const elapsedMs = performance.now() - t0;
  if (completed < total) log(`${label}: stopped after ${completed}/${total} requests (${interrupted ? 'interrupted' : `time limit ${PHASE_TIMEOUT_MS / 1000} s`})`);
  return { requested: total, completed, errors, errorSamples, elapsedMs, latencies: latencies.subarray(0, completed) };
}

/**
 * One proxied request, alone: DB round trips before the agent saw it (the echo agent reads the
 * relay's counter when the request reaches it), before the response reached us, and in total once
 * the DB has gone quiet (background / waitUntil work included).
 */
async function measureOne(send, n, stats, echo) {
  const q0 = stats.queries;
  const c0 = stats.connections;
  const hits0 = echo.hits;
  const s = performance.now();
  const result = await send(n);
  const latency = performance.now() - s;
  const q1 = stats.queries;
  await settle(stats, 'queries', 150, 2000);
  const dispatched = echo.hits === hits0 + 1;
  return {
    ...result,
    ok: result.ok && dispatched,
    error: result.ok && !dispatched ? `agent saw ${echo.hits - hits0} requests, expected 1` : result.error,
    latency,
    beforeDispatch: dispatched ? echo.lastProbe - q0 : NaN,
    responsePath: q1 - q0,
    total: stats.queries - q0,
    connections: stats.connections - c0,
  };
}

/** `count` proxied requests one at a time (see measureOne), bounded by PHASE_TIMEOUT_MS. */
async function runSequential(send, stats, echo, count) {
  const sum = { beforeDispatch: 0, responsePath: 0, total: 0, connections: 0 };
  let measured = 0;
  let errors = 0;
  const latencies = [];
  const stopAt = performance.now() + PHASE_TIMEOUT_MS;
  let done = 0;
  for (let i = 0; i < count && !interrupted && performance.now() < stopAt; i++) {
    const r = await measureOne(send, 100_000 + i, stats, echo);
    latencies.push(r.latency);
    done += 1;
    if (!r.ok) {
      errors += 1;
      continue;
    }
    measured += 1;
    for (const key of Object.keys(sum)) sum[key] += r[key];
  }
  errors += count - done;
  const per = measured || NaN;
  latencies.sort((x, y) => x - y);
  return {
    done,
    errors,
    beforeDispatch: sum.beforeDispatch / per,
    responsePath: sum.responsePath / per,
    total: sum.total / per,
    connections: sum.connections / per,
    p50: percentile(latencies, 50),
  };
}

/** Waits until stats[key] has not changed for quietMs (at most maxMs); true if it never went quiet. */
async function settle(stats, key, quietMs, maxMs) {
  const end = performance.now() + maxMs;
  let last = stats[key];
  let since = performance.now();
  while (performance.now() < end) {
    await sleep(25);
    if (stats[key] !== last) {
      last = stats[key];
      since = performance.now();
    } else if (performance.now() - since >= quietMs) {
      return false;
    }
  }
  return true;
}

function emptyRun() {
  const cpu = { workerd: 0, postgres: 0, self: 0, wallMs: 0, total: 0 };
  return { requested: 0, completed: 0, errors: 0, errorSamples: new Map(), elapsedMs: 0, latencies: [], cpu };
}

/** Adds one round's `part` (and its CPU delta) to the path's totals. */
function mergeRun(run, part, cpuDelta) {
  run.requested += part.requested;
  run.completed += part.completed;
  run.errors += part.errors;
  run.elapsedMs += part.elapsedMs;
  for (const x of part.latencies) run.latencies.push(x);
  for (const [error, count] of part.errorSamples) run.errorSamples.set(error, (run.errorSamples.get(error) ?? 0) + count);
  for (const key of Object.keys(run.cpu)) run.cpu[key] += cpuDelta[key];
}

function summarize(run) {
  const sorted = Array.from(run.latencies).sort((x, y) => x - y);
  return {
    rps: run.completed / (run.elapsedMs / 1000),
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? NaN,
  };
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

// ---- processes and servers ---------------------------------------------------------------------

/**
 * Answers every POST with a JSON-RPC success echoing the request id; keep-alive on. `probe()` is
 * read when each request has fully arrived (`lastProbe`).
 */
async function startEchoAgent({ probe = () => 0 } = {}) {
  const sockets = new Set();
  let hits = 0;
  let lastProbe = NaN;
  const server = http.createServer({ keepAlive: true }, (req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405, { 'Content-Length': '0' }).end();
      return;
    }
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > 1024 * 1024) req.destroy();
      else chunks.push(chunk);
    });
    req.on('end', () => {
      lastProbe = probe();
      hits += 1;
      let id = null;
      try {
        id = JSON.parse(Buffer.concat(chunks).toString('utf8'))?.id ?? null;
      } catch {
        /* not JSON: id stays null */
      }
      const body = JSON.stringify({ jsonrpc: '2.0', id, result: { ok: true } });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 65_000;
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const port = await freePort();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    port,
    get hits() {
      return hits;
    },
    get lastProbe() {
      return lastProbe;
    },
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

/**
 * CPU milliseconds used so far by: workerd (all its threads), the Postgres cluster
 * (postmaster, live backends, and reaped backends via the postmaster's cutime), and this process.
 * Linux only (/proc); elsewhere `available` is false and the report skips the section.
 */
function cpuMeter({ workerdPid, pgDataDir }) {
  const tickMs = 10; // CLK_TCK is 100 on Linux
  const readStat = (pid) => {
    const raw = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = raw.slice(raw.lastIndexOf(')') + 2).split(' '); // fields from #3 (state) on
    return { ppid: Number(f[1]), own: Number(f[11]) + Number(f[12]), reaped: Number(f[13]) + Number(f[14]) };
  };
  const treeMs = (root) => {
    if (!root) return 0;
    const stats = new Map();
    for (const name of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        stats.set(Number(name), readStat(name));
      } catch {
        /* exited meanwhile */
      }
    }
    const inTree = (pid) => {
      for (let cur = pid, hops = 0; cur > 1 && hops < 64; hops += 1) {
        if (cur === root) return true;
        cur = stats.get(cur)?.ppid ?? 0;
      }
      return false;
    };
    let ticks = 0;
    for (const [pid, st] of stats) {
      if (pid === root) ticks += st.own + st.reaped;
      else if (inTree(pid)) ticks += st.own;
    }
    return ticks * tickMs;
  };
  let postmaster = 0;
  try {
    postmaster = Number(fs.readFileSync(path.join(pgDataDir, 'postmaster.pid'), 'utf8').split('\n')[0]) || 0;
    readStat(workerdPid);
  } catch {
    const zero = () => ({ workerd: 0, postgres: 0, self: 0, at: performance.now() });
    return { available: false, sample: zero, delta: () => ({ ...zero(), total: 0, wallMs: 1 }) };
  }
  return {
    available: true,
    sample: () => {
      const usage = process.cpuUsage();
      return { workerd: treeMs(workerdPid), postgres: treeMs(postmaster), self: (usage.user + usage.system) / 1000, at: performance.now() };
    },
    delta: (a, b) => {
      const d = { workerd: b.workerd - a.workerd, postgres: b.postgres - a.postgres, self: b.self - a.self, wallMs: b.at - a.at };
      return { ...d, total: d.workerd + d.postgres + d.self };
    },
  };
}

// ---- API helpers -------------------------------------------------------------------------------

async function api(base, method, route, token, body, expectStatus) {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  if (res.status !== expectStatus) throw new Error(`${method} ${route}: expected ${expectStatus}, got ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text);
}

async function createExternal(base, name) {
  const body = await api(base, 'POST', '/workspaces', ADMIN_TOKEN, { name, external: true }, 201);
  const token = body?.connection?.auth_token;
  if (!body?.id || !token) throw new Error(`POST /workspaces returned no id/connection.auth_token: ${JSON.stringify(body).slice(0, 300)}`);
  return { id: body.id, token };
}

// ---- small utilities ---------------------------------------------------------------------------

function intEnv(name, fallback, min, max) {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    console.error(`[bench] ${name} must be an integer in [${min}, ${max}], got "${raw}"`);
    process.exit(2);
  }
  return value;
}

function fmtLoad(load) {
  return load.map((x) => x.toFixed(2)).join(' ');
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

function ring(size) {
  const items = [];
  let count = 0;
  return {
    get count() {
      return count;
    },
    push(line) {
      count += 1;
      items.push(line);
      if (items.length > size) items.shift();
    },
    lines: () => [...items],
  };
}

function withTimeout(promise, ms, message) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function formatErrorSamples(samples) {
  return [...samples.entries()]
    .sort((x, y) => y[1] - x[1])
    .slice(0, 5)
    .map(([error, count]) => `${count}x ${error}`)
    .join(' | ');
}

function table(header, rows) {
  const all = [header, ...rows].map((r) => r.map(String));
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const fmt = (r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  return [fmt(all[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(fmt)].join('\n');
}
