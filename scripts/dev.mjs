// `npm run dev`: embedded Postgres + relay + `wrangler dev`, offline, no accounts.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, startStack } from './lib/stack.mjs';

const started = Date.now();
const port = Number(process.env.PORT ?? 8787);
const devVars = path.join(ROOT, '.dev.vars');
const runtimeVars = path.join(ROOT, '.data', 'dev-runtime.env');

if (!fs.existsSync(devVars)) {
  // First run: local-only secrets, printed once so the operator can use them.
  const admin = `dev-${crypto.randomBytes(16).toString('hex')}`;
  fs.writeFileSync(devVars, `ADMIN_TOKEN=${admin}\nSECRETS_ENCRYPTION_KEY=${crypto.randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  console.log(`[dev] wrote .dev.vars with a fresh ADMIN_TOKEN (see that file)`);
}

const stack = await startStack({
  dataDir: path.join(ROOT, '.data', 'pg'),
  database: 'molecule',
  pgPort: Number(process.env.PGPORT ?? 54329),
});
fs.mkdirSync(path.dirname(runtimeVars), { recursive: true });
fs.writeFileSync(runtimeVars, `DATABASE_URL=${stack.databaseUrl}\nNEON_WS_PROXY=${stack.wsProxy}\nMOLECULE_ENV=development\n`, { mode: 0o600 });
console.log(`[dev] postgres + migrations ready in ${Date.now() - started} ms`);

const wrangler = spawn(
  process.execPath,
  [path.join(ROOT, 'node_modules', 'wrangler', 'bin', 'wrangler.js'), 'dev', '--ip', '127.0.0.1', '--port', String(port),
    '--env-file', devVars, '--env-file', runtimeVars, '--show-interactive-dev-session=false', '--persist-to', path.join(ROOT, '.data', 'wrangler')],
  { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
);
wrangler.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  if (String(chunk).includes('Ready on')) console.log(`[dev] API on http://127.0.0.1:${port} (cold start ${Date.now() - started} ms)`);
});

let stopping = false;
async function shutdown(code) {
  if (stopping) return;
  stopping = true;
  wrangler.kill('SIGTERM');
  await stack.stop().catch(() => {});
  process.exit(code);
}
process.on('SIGINT', () => shutdown(0));
process.on('SIGTERM', () => shutdown(0));
wrangler.on('exit', (code) => shutdown(code ?? 1));
