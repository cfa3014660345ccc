// Production's shape, locally: the `wrangler deploy --dry-run` bundle served by one plain `workerd`
// process on a direct socket (no wrangler dev, no ProxyWorker, no request logging), plus the
// do-nothing floor Worker on a second socket of the same process.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import zlib from 'node:zlib';

const HERE = path.dirname(new URL(import.meta.url).pathname);

/** The native workerd binary the `workerd` npm package resolves for this platform. */
export function workerdBinary(root) {
  const workerd = createRequire(path.join(root, 'package.json'))('workerd');
  return { bin: workerd.default, version: workerd.version };
}

/**
 * `wrangler deploy --dry-run --outdir <outdir>`: exactly what `wrangler deploy` would upload.
 * `env` must keep wrangler off the network (see bench.mjs). Returns the modules to load, main first.
 */
export async function buildBundle({ root, outdir, env, onCleanup, timeoutMs = 120_000 }) {
  const output = [];
  const child = spawn(
    process.execPath,
    [path.join(root, 'node_modules', 'wrangler', 'bin', 'wrangler.js'), 'deploy', '--dry-run', '--outdir', outdir],
    // Own process group, so an interrupted bench can stop wrangler and the esbuild it starts.
    { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  let exited = false;
  const killGroup = () => {
    if (exited) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  };
  onCleanup?.('stop wrangler build', killGroup);
  child.stdout.on('data', (c) => output.push(String(c)));
  child.stderr.on('data', (c) => output.push(String(c)));
  const timer = setTimeout(killGroup, timeoutMs);
  const code = await new Promise((resolve) =>
    child.once('exit', (c, s) => {
      exited = true;
      resolve(c ?? s);
    }),
  );
  clearTimeout(timer);
  const text = output.join('').replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
  if (code !== 0) throw new Error(`wrangler deploy --dry-run failed (${code}):\n${text.slice(-3000)}`);

  const files = fs.readdirSync(outdir).filter((f) => !f.endsWith('.map') && f !== 'README.md');
  const main = files.includes('index.js') ? 'index.js' : files.find((f) => /\.m?js$/.test(f));
  if (!main) throw new Error(`no JavaScript module in the dry-run output: ${files.join(', ')}`);
  const modules = [main, ...files.filter((f) => f !== main)].map((name) => ({ name, kind: moduleKind(name) }));
  const unknown = modules.filter((m) => !m.kind);
  if (unknown.length) throw new Error(`dry-run output has modules the bench cannot load: ${unknown.map((m) => m.name).join(', ')}`);
  const rawBytes = modules.reduce((n, m) => n + fs.statSync(path.join(outdir, m.name)).size, 0);
  const gzipBytes = modules.reduce((n, m) => n + zlib.gzipSync(fs.readFileSync(path.join(outdir, m.name)), { level: 9 }).length, 0);
  return { outdir, modules, rawBytes, gzipBytes };
}

function moduleKind(name) {
  if (/\.m?js$/.test(name)) return 'esModule';
  if (name.endsWith('.cjs')) return 'commonJsModule';
  if (name.endsWith('.wasm')) return 'wasm';
  if (name.endsWith('.txt') || name.endsWith('.html')) return 'text';
  if (name.endsWith('.bin')) return 'data';
  return undefined;
}

/** `[vars]` of wrangler.toml (string values only: all this project has). */
export function wranglerVars(root) {
  const toml = fs.readFileSync(path.join(root, 'wrangler.toml'), 'utf8');
  const vars = {};
  let inVars = false;
  for (const raw of toml.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line.startsWith('[')) inVars = line === '[vars]';
    else if (inVars) {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"([^"\\]*)"$/.exec(line);
      if (m) vars[m[1]] = m[2];
    }
  }
  return vars;
}

/**
 * The `[[durable_objects.bindings]]` of wrangler.toml (binding → exported class), read from the
 * same file `wrangler deploy` reads, so a new Durable Object is in the bench as soon as it is bound.
 */
export function wranglerDurableObjects(root) {
  const toml = fs.readFileSync(path.join(root, 'wrangler.toml'), 'utf8');
  const objects = [];
  for (const section of toml.split(/^\[\[durable_objects\.bindings\]\]\s*$/m).slice(1)) {
    const body = section.split(/^\[/m)[0];
    const binding = /^name\s*=\s*"([^"]+)"/m.exec(body)?.[1];
    const className = /^class_name\s*=\s*"([^"]+)"/m.exec(body)?.[1];
    if (!binding || !className) throw new Error('wrangler.toml: a durable_objects binding without name or class_name');
    objects.push({ binding, className });
  }
  if (objects.length === 0) throw new Error('wrangler.toml binds no Durable Objects');
  return objects;
}

/** `compatibility_date` / `compatibility_flags` of wrangler.toml. */
export function wranglerCompat(root) {
  const toml = fs.readFileSync(path.join(root, 'wrangler.toml'), 'utf8');
  const date = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)?.[1];
  if (!date) throw new Error('wrangler.toml has no compatibility_date');
  const flags = /^compatibility_flags\s*=\s*\[([^\]]*)\]/m.exec(toml)?.[1];
  return { date, flags: flags ? [...flags.matchAll(/"([^"]+)"/g)].map((m) => m[1]) : [] };
}

const str = (s) => JSON.stringify(String(s)); // Cap'n Proto text strings accept JSON's escapes

/**
 * Writes the workerd config next to the bundle (modules are `embed`ded relative to it).
 * - `main` on 127.0.0.1:<port>: the deploy bundle with its Durable Object namespaces on local
 *   disk (SQLite-backed, as `new_sqlite_classes` declares) and the given text bindings.
 * - `floor` on 127.0.0.1:<floorPort>: the do-nothing Worker, fetching `agentUrl`.
 * Outbound fetch/WebSocket from both Workers may reach 127.0.0.1 only.
 */
export function writeWorkerdConfig({ bundle, port, floorPort, doDir, bindings, durableObjects, compat, agentUrl }) {
  fs.copyFileSync(path.join(HERE, 'floor-worker.js'), path.join(bundle.outdir, 'bench-floor-worker.js'));
  const compatLines = (indent) =>
    `${indent}compatibilityDate = ${str(compat.date)},\n${indent}compatibilityFlags = [${compat.flags.map(str).join(', ')}],`;
  const modules = bundle.modules.map((m) => `        (name = ${str(m.name)}, ${m.kind} = embed ${str(m.name)})`).join(',\n');
  const textBindings = Object.entries(bindings).map(([k, v]) => `        (name = ${str(k)}, text = ${str(v)})`);
  const doBindings = durableObjects.map((d) => `        (name = ${str(d.binding)}, durableObjectNamespace = ${str(d.className)})`);
  const namespaces = durableObjects
    .map((d) => `        (className = ${str(d.className)}, uniqueKey = ${str(`molecule-edge-bench-${d.className}`)}, enableSql = true)`)
    .join(',\n');
  const config = `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = (
${compatLines('      ')}
      modules = [
${modules}
      ],
      bindings = [
${[...textBindings, ...doBindings].join(',\n')}
      ],
      durableObjectNamespaces = [
${namespaces}
      ],
      durableObjectStorage = (localDisk = "do-disk"),
      globalOutbound = "loopback",
    )),
    (name = "floor", worker = (
${compatLines('      ')}
      modules = [(name = "floor.js", esModule = embed "bench-floor-worker.js")],
      bindings = [(name = "AGENT_URL", text = ${str(agentUrl)})],
      globalOutbound = "loopback",
    )),
    (name = "do-disk", disk = (path = ${str(doDir)}, writable = true)),
    (name = "loopback", network = (allow = ["127.0.0.1/32"])),
  ],
  sockets = [
    (name = "main", address = ${str(`127.0.0.1:${port}`)}, http = (), service = "main"),
    (name = "floor", address = ${str(`127.0.0.1:${floorPort}`)}, http = (), service = "floor"),
  ],
);
`;
  const file = path.join(bundle.outdir, 'bench.capnp');
  fs.writeFileSync(file, config, { mode: 0o600 }); // holds the bench's throwaway secrets
  return file;
}

/** `workerd serve <config>` in its own process group; resolves once `readyUrl` answers 200. */
export async function startWorkerd({ bin, configFile, readyUrl, readyTimeoutMs, output }) {
  const child = spawn(bin, ['serve', configFile], {
    cwd: path.dirname(configFile),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let exited = null;
  const exitPromise = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    }),
  );
  const collect = (prefix) => {
    let pending = '';
    return (chunk) => {
      pending += String(chunk);
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const line of parts) if (line.trim()) output.push(`${prefix}${line}`);
      if (pending.length > 64 * 1024) pending = pending.slice(-1024);
    };
  };
  child.stdout.on('data', collect(''));
  child.stderr.on('data', collect('[stderr] '));

  const stop = async () => {
    if (exited) return;
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      return;
    }
    if ((await Promise.race([exitPromise, sleep(5000).then(() => 'timeout')])) === 'timeout') {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      await Promise.race([exitPromise, sleep(3000)]);
    }
  };

  const deadline = Date.now() + readyTimeoutMs;
  let last = 'no answer yet';
  while (true) {
    if (exited) {
      await stop();
      throw new Error(`workerd exited before it was ready (code ${exited.code}, signal ${exited.signal})`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`workerd not ready within ${readyTimeoutMs / 1000} s (${readyUrl}: ${last})`);
    }
    try {
      const res = await fetch(readyUrl, { signal: AbortSignal.timeout(5000) });
      const text = await res.text();
      if (res.status === 200) break;
      last = `HTTP ${res.status} ${text.slice(0, 200)}`;
    } catch (err) {
      last = `${err?.cause?.code ?? err?.name} ${err?.message}`;
    }
    await sleep(100);
  }
  return {
    pid: child.pid,
    stop,
    get exited() {
      return exited;
    },
  };
}
