// Runs vitest and exits by what the tests did, not by the process's exit status alone: in this
// setup (the Workers pool + our global setup) vitest's own exit status was found to be 0 with
// failing tests (an exit hook of the wrangler bundled in @cloudflare/vitest-plugin, via
// signal-exit, resets it), so `npm test` and CI would have passed a red suite. The JSON report
// decides: any failed test or suite, any error, or no report at all → exit 1.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const report = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vitest-report-')), 'report.json');
const args = ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)];
const child = spawn(process.execPath, [path.join('node_modules', 'vitest', 'vitest.mjs'), ...args], { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));

child.on('exit', (code, signal) => {
  let result;
  try {
    result = JSON.parse(fs.readFileSync(report, 'utf8'));
  } catch {
    console.error('[test] vitest wrote no report: counting the run as failed');
    process.exit(code || 1);
  }
  const failed = result.numFailedTests + result.numFailedTestSuites;
  if (!result.success || failed > 0) {
    console.error(`[test] ${result.numFailedTests} failed test(s), ${result.numFailedTestSuites} failed suite(s)${result.success ? '' : ', run not successful'}`);
    process.exit(1);
  }
  process.exit(signal ? 1 : (code ?? 1));
});
