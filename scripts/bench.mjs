// `npm run bench`: A2A proxy overhead, measured end to end on this machine.
//
// Starts a private stack (embedded Postgres + relay, a throwaway database), `wrangler dev` with a
// temp env file, and a keep-alive echo agent; then fires the same fixed number of A2A requests at
// the same concurrency once through the Worker (POST /workspaces/:id/a2a) and once straight at the
// agent, and reports throughput, latency, and how many Postgres round trips and relay WebSocket
// connections each proxied request costs. All traffic stays on 127.0.0.1.
//
// Env: BENCH_REQUESTS (2000), BENCH_CONCURRENCY (16), BENCH_WARMUP (200),
//      BENCH_PHASE_TIMEOUT_S (60, per load phase), BENCH_TIMEOUT_S (300, whole run).
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './lib/local-postgres.mjs';
import { ROOT, startStack } from './lib/stack.mjs';

const REQUESTS = intEnv('BENCH_REQUESTS', 2000, 1, 1_000_000);
const CONCURRENCY = intEnv('BENCH_CONCURRENCY', 16, 1, 1024);
const WARMUP = intEnv('BENCH_WARMUP', 200, 0, 100_000);
const PHASE_TIMEOUT_MS = intEnv('BENCH_PHASE_TIMEOUT_S', 60, 1, 3600) * 1000;
const RUN_TIMEOUT_MS = intEnv('BENCH_TIMEOUT_S', 300, 10, 7200) * 1000;
const SEQUENTIAL = 50;
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
for (const signal of ['SIGINT', 'SIGTERM']) {
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
  const cpus = os.cpus();
  log(`requests=${REQUESTS} concurrency=${CONCURRENCY} warmup=${WARMUP}; ${cpus.length} CPUs, node ${process.version}, wrangler ${wranglerVersion}`);

  // Private temp area: Postgres cluster, wrangler persistence, env file, wrangler's TMPDIR.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'molecule-bench-'));
  fs.chmodSync(tmp, 0o755); // embedded Postgres runs as `postgres` when we are root: it must traverse this.
  onCleanup('remove temp dir', () => fs.rmSync(tmp, { recursive: true, force: true }));

  // 1. Stack. A DATABASE_URL in the environment would make startStack use that database instead;
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

  // 2. Echo agent.
  const echo = await startEchoAgent();
  onCleanup('close echo agent', () => echo.close());
  log(`echo agent on 127.0.0.1:${echo.port}`);

  // 3. Worker.
  const worker = await startWrangler({ tmp, stack, wranglerVersion });
  onCleanup('stop wrangler', () => worker.stop());
  const base = `http://127.0.0.1:${worker.port}`;
  log(`worker ready on ${base}`);

  // 4. Workspaces: A (caller, poll mode, holds its token) and B (target, push to the echo agent).
  const a = await createExternal(base, 'bench-caller');
  const b = await createExternal(base, 'bench-target');
  await api(base, 'POST', '/registry/register', b.token, { id: b.id, url: `http://127.0.0.1:${echo.port}/`, agent_card: { name: 'bench' } }, 200);
  await api(base, 'POST', '/registry/register', a.token, { id: a.id, agent_card: { name: 'bench' }, delivery_mode: 'poll' }, 200);
  log(`workspaces: A=${a.id} (caller, poll)  B=${b.id} (target, push -> echo)`);

  const proxiedUrl = `${base}/workspaces/${b.id}/a2a`;
  const directUrl = `http://127.0.0.1:${echo.port}/`;
  const proxiedHeaders = { 'Content-Type': 'application/json', Authorization: `Bearer ${a.token}` };
  const directHeaders = { 'Content-Type': 'application/json' };
  const proxied = (n) => sendA2A(proxiedUrl, proxiedHeaders, n);
  const direct = (n) => sendA2A(directUrl, directHeaders, n);

  // Smoke test: one proxied request must come back 200 from the agent, or nothing below means anything.
  const smoke = await proxied(0);
  if (!smoke.ok) throw new Error(`proxied smoke request failed: ${smoke.error}`);

  // 5. Warm-up (both paths), then the measured runs.
  let warmupErrors = 0;
  if (WARMUP > 0) {
    log(`warm-up: ${WARMUP} proxied + ${WARMUP} direct at concurrency ${CONCURRENCY}`);
    const wp = await runLoad('warm-up proxied', proxied, WARMUP, CONCURRENCY);
    const wd = await runLoad('warm-up direct', direct, WARMUP, CONCURRENCY);
    warmupErrors = wp.errors + wd.errors + (wp.requested - wp.completed) + (wd.requested - wd.completed);
    if (warmupErrors) log(`warm-up had ${warmupErrors} failed requests: ${formatErrorSamples(wp.errorSamples)} ${formatErrorSamples(wd.errorSamples)}`);
  }
  await settle(stack.relay.stats, 'queries', 2000, 5000); // let warm-up's background writes land first

  const cpu = cpuMeter({ wranglerPid: worker.pid, pgDataDir: path.join(tmp, 'data') });
  const stats = stack.relay.stats;
  const reloads0 = worker.reloads;
  const cpuP0 = cpu.sample();
  const q0 = stats.queries;
  const c0 = stats.connections;
  const hits0 = echo.hits;
  log(`proxied run: ${REQUESTS} requests at concurrency ${CONCURRENCY}`);
  const p = await runLoad('proxied', proxied, REQUESTS, CONCURRENCY);
  const cpuP1 = cpu.sample();
  const q1 = stats.queries;
  const c1 = stats.connections;
  const agentHits = echo.hits - hits0;
  await sleep(2000); // waitUntil work (activity rows, last_outbound_at) lands after the responses
  const q2 = stats.queries;
  const c2 = stats.connections;
  const stillMoving = await settle(stats, 'queries', 300, 3000);
  const q2b = stats.queries;

  log(`direct run: ${REQUESTS} requests at concurrency ${CONCURRENCY}`);
  const cpuD0 = cpu.sample();
  const d = await runLoad('direct', direct, REQUESTS, CONCURRENCY);
  const cpuD1 = cpu.sample();

  log(`sequential: ${SEQUENTIAL} proxied requests, one at a time, waiting for the DB to go quiet between them`);
  const seq = await runSequential(proxied, stats, SEQUENTIAL);
  const reloads = worker.reloads - reloads0;

  // 6. Report.
  const pStats = summarize(p);
  const dStats = summarize(d);
  const n = p.completed || 1;
  const lines = [];
  const out = (s = '') => lines.push(s);
  out();
  out('=== molecule-edge A2A proxy bench ===');
  out(`machine: ${cpus.length} CPUs (${cpus[0]?.model?.trim() ?? 'unknown'}), ${os.platform()} ${os.arch()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} (1/5/15 min; other processes compete for the same cores)`);
  out(`runtime: node ${process.version}, wrangler ${wranglerVersion} (wrangler dev / workerd, local), embedded Postgres via WebSocket relay`);
  out(`load: global fetch (keep-alive), ${REQUESTS} requests per path at concurrency ${CONCURRENCY}, after ${WARMUP} warm-up requests per path`);
  out();
  out(table(
    ['path', 'requests', 'conc', 'errors', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'],
    [
      ['proxied', p.completed, CONCURRENCY, p.errors, pStats.rps.toFixed(1), pStats.p50.toFixed(2), pStats.p90.toFixed(2), pStats.p99.toFixed(2), pStats.max.toFixed(2)],
      ['direct', d.completed, CONCURRENCY, d.errors, dStats.rps.toFixed(1), dStats.p50.toFixed(2), dStats.p90.toFixed(2), dStats.p99.toFixed(2), dStats.max.toFixed(2)],
    ],
  ));
  out();
  out(`ratio proxied/direct: req/s ${(pStats.rps / dStats.rps).toFixed(3)}x, p50 ${(pStats.p50 / dStats.p50).toFixed(1)}x ` +
    `(proxy adds ~${(pStats.p50 - dStats.p50).toFixed(2)} ms at p50, ~${(pStats.p99 - dStats.p99).toFixed(2)} ms at p99)`);
  out(`agent deliveries during the proxied run: ${agentHits} for ${p.completed} proxied requests`);
  out();
  const kv = (label, value, extra = '') => out(`  ${label.padEnd(62)} ${value}${extra}`);
  out('DB round trips per proxied request (Parse/Query messages + HTTP queries seen by the relay):');
  kv('concurrent run, counted when the last response arrived:', ((q1 - q0) / n).toFixed(2));
  kv('concurrent run, response path + background (after 2 s wait):', ((q2 - q0) / n).toFixed(2),
    q2b !== q2 ? `  (still moving after the wait: ${((q2b - q0) / n).toFixed(2)} once quiet${stillMoving ? ', and not quiet after 3 s more' : ''})` : '');
  kv(`sequential ${SEQUENTIAL}, sent before the response reached the client:`, seq.responsePath.toFixed(2));
  kv(`sequential ${SEQUENTIAL}, sent after it (background / waitUntil):`, seq.background.toFixed(2));
  kv(`sequential ${SEQUENTIAL}, total:`, (seq.responsePath + seq.background).toFixed(2), seq.errors ? `  (${seq.errors} of ${SEQUENTIAL} failed)` : '');
  out('Relay WebSocket connections per proxied request:');
  kv('concurrent run (after the wait):', ((c2 - c0) / n).toFixed(2), `  (${((c1 - c0) / n).toFixed(2)} by the last response)`);
  kv(`sequential ${SEQUENTIAL}:`, seq.connections.toFixed(2));
  out('  (deferred work starts as soon as the agent has answered, so the activity insert usually reaches');
  out('   the relay before the client has the response; by code reading only the context query gates it)');
  out(`Sequential proxied latency (one request at a time): p50 ${seq.p50.toFixed(2)} ms`);
  const cpuLine = (label, a, b, run) => {
    const per = (ms) => (ms / (run.completed || 1)).toFixed(2);
    const wall = run.elapsedMs;
    const parts = [
      `wrangler+workerd ${per(b.wrangler - a.wrangler)}`,
      `postgres ${per(b.postgres - a.postgres)}`,
      `bench process (load gen + echo + relay) ${per(b.self - a.self)}`,
    ];
    const total = b.wrangler - a.wrangler + (b.postgres - a.postgres) + (b.self - a.self);
    return `  ${label}: ${parts.join(', ')} => ${per(total)} ms CPU/request; these used ${(total / wall).toFixed(2)} of ${cpus.length} cores`;
  };
  if (cpu.available) {
    out('CPU time per request during the measured runs (ms, from /proc):');
    out(cpuLine('proxied', cpuP0, cpuP1, p));
    out(cpuLine('direct ', cpuD0, cpuD1, d));
  }
  for (const [label, run] of [['proxied', p], ['direct', d]]) {
    if (run.errors) out(`errors (${label}): ${formatErrorSamples(run.errorSamples)}`);
    if (run.completed < run.requested) out(`INCOMPLETE (${label}): only ${run.completed} of ${run.requested} requests finished within ${PHASE_TIMEOUT_MS / 1000} s`);
  }
  if (warmupErrors) out(`warm-up failures: ${warmupErrors}`);
  if (reloads) out(`WARNING: wrangler rebuilt and reloaded the Worker ${reloads} time(s) during the measured runs (files under src/ changed); numbers include that stall and may mix code versions`);
  out(`total bench time: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  console.log(lines.join('\n'));

  const failed = [];
  for (const [label, run] of [['proxied', p], ['direct', d]]) {
    if (run.completed < run.requested) failed.push(`${label} run incomplete`);
    else if (run.errors / run.requested > MAX_ERROR_RATE) failed.push(`${label} error rate ${((100 * run.errors) / run.requested).toFixed(2)}% > 1%`);
  }
  if (seq.errors / SEQUENTIAL > MAX_ERROR_RATE) failed.push(`sequential error rate ${((100 * seq.errors) / SEQUENTIAL).toFixed(0)}% > 1%`);
  if (failed.length) {
    console.error(`\n[bench] FAILED: ${failed.join('; ')}`);
    const tail = worker.output.lines().slice(-30);
    if (tail.length) console.error(`[bench] last wrangler output:\n${tail.join('\n')}`);
    return 1;
  }
  return 0;
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
 * One request at a time; after each response the relay's query counter is read (response path),
 * then we wait until it stops moving (background work done) before the next request.
 */
async function runSequential(send, stats, count) {
  let responsePath = 0;
  let background = 0;
  let connections = 0;
  let errors = 0;
  const latencies = [];
  const stopAt = performance.now() + PHASE_TIMEOUT_MS;
  let done = 0;
  for (let i = 0; i < count && !interrupted && performance.now() < stopAt; i++) {
    const q0 = stats.queries;
    const c0 = stats.connections;
    const s = performance.now();
    const result = await send(100_000 + i);
    latencies.push(performance.now() - s);
    const q1 = stats.queries;
    await settle(stats, 'queries', 150, 2000);
    responsePath += q1 - q0;
    background += stats.queries - q1;
    connections += stats.connections - c0;
    if (!result.ok) errors += 1;
    done += 1;
  }
  errors += count - done;
  const per = done || 1;
  latencies.sort((x, y) => x - y);
  return { responsePath: responsePath / per, background: background / per, connections: connections / per, errors, p50: percentile(latencies, 50) };
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

/** Answers every POST with a JSON-RPC success echoing the request id; keep-alive on. */
async function startEchoAgent() {
  const sockets = new Set();
  let hits = 0;
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
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

/** `wrangler dev` on a free loopback port with a temp env file; resolves once it says "Ready on". */
async function startWrangler({ tmp, stack, wranglerVersion }) {
  const port = await freePort();
  const inspectorPort = await freePort();
  const envFile = path.join(tmp, 'bench.env');
  fs.writeFileSync(
    envFile,
    [
      `DATABASE_URL=${stack.databaseUrl}`,
      `NEON_WS_PROXY=${stack.wsProxy}`,
      'MOLECULE_ENV=development',
      `ADMIN_TOKEN=${ADMIN_TOKEN}`,
      `SECRETS_ENCRYPTION_KEY=${crypto.randomBytes(32).toString('base64')}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  // Keep wrangler off the network: no metrics or error reports, no cf.json download, and a
  // pre-seeded update-check cache in a private TMPDIR so it never asks the npm registry.
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

  const output = ring(200);
  const child = spawn(
    process.execPath,
    [
      path.join(ROOT, 'node_modules', 'wrangler', 'bin', 'wrangler.js'), 'dev',
      '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspectorPort),
      '--env-file', envFile, '--show-interactive-dev-session=false', '--persist-to', path.join(tmp, 'wrangler-state'),
    ],
    // Own process group, so stop() can signal wrangler and the workerd it starts, and only those.
    { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  let exited = false;
  const exitPromise = new Promise((resolve) => child.once('exit', (code, signal) => {
    exited = true;
    resolve({ code, signal });
  }));

  let ready = false;
  let reloads = 0;
  const readyPromise = new Promise((resolve, reject) => {
    let pending = '';
    const onData = (chunk) => {
      pending += String(chunk);
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const line of parts) {
        const clean = line.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
        output.push(clean);
        // wrangler dev watches src/: an edit elsewhere rebuilds and swaps the Worker mid-run.
        if (ready && clean.includes('Reloading local server')) reloads += 1;
        if (!ready && clean.includes('Ready on')) {
          ready = true;
          resolve();
        }
      }
      if (pending.length > 64 * 1024) pending = pending.slice(-1024);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk) => {
      for (const line of String(chunk).split('\n')) if (line.trim()) output.push(`[stderr] ${line.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')}`);
    });
    void exitPromise.then(({ code, signal }) => reject(new Error(`wrangler exited before it was ready (code ${code}, signal ${signal})`)));
  });

  const stop = async () => {
    if (exited) return;
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      return;
    }
    const result = await Promise.race([exitPromise, sleep(8000).then(() => 'timeout')]);
    if (result === 'timeout') {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      await Promise.race([exitPromise, sleep(3000)]);
    }
  };

  try {
    await withTimeout(readyPromise, READY_TIMEOUT_MS, `wrangler dev did not print "Ready on" within ${READY_TIMEOUT_MS / 1000} s`);
  } catch (err) {
    await stop();
    console.error(`[bench] wrangler output:\n${output.lines().join('\n')}`);
    throw err;
  }
  return {
    port,
    pid: child.pid,
    output,
    stop,
    get reloads() {
      return reloads;
    },
  };
}

/**
 * CPU milliseconds used so far by: wrangler and everything it started, the Postgres cluster
 * (postmaster, live backends, and reaped backends via the postmaster's cutime), and this process.
 * Linux only (/proc); elsewhere `available` is false and the report skips the section.
 */
function cpuMeter({ wranglerPid, pgDataDir }) {
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
    readStat(wranglerPid);
  } catch {
    return { available: false, sample: () => ({ wrangler: 0, postgres: 0, self: 0 }) };
  }
  return {
    available: true,
    sample: () => {
      const usage = process.cpuUsage();
      return { wrangler: treeMs(wranglerPid), postgres: treeMs(postmaster), self: (usage.user + usage.system) / 1000 };
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

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

function ring(size) {
  const items = [];
  return {
    push(line) {
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
