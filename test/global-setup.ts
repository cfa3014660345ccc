import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
// @ts-expect-error plain ESM helper shared with the dev and bench scripts
import { startStack } from '../scripts/lib/stack.mjs';
import { startFakeProvisioner } from './support/fake-provisioner';
import { startLoopbackServers } from './support/loopback-servers';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    wsProxy: string;
    loopbackPort: number;
    provisionerPort: number;
  }
}

/** A fresh database per run (on the embedded cluster unless DATABASE_URL is set), plus loopback peers. */
export default async function setup(project: TestProject) {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'molecule-test-pg-'));
  await fs.chmod(dataDir, 0o755);
  const stack = await startStack({ dataDir: path.join(dataDir, 'data'), database: `test_${Date.now()}`, fresh: true });
  const loopback = await startLoopbackServers();
  const provisioner = await startFakeProvisioner();
  project.provide('databaseUrl', stack.databaseUrl);
  project.provide('wsProxy', stack.wsProxy);
  project.provide('loopbackPort', loopback.port);
  project.provide('provisionerPort', provisioner.port);
  return async () => {
    await loopback.close();
    await provisioner.close();
    await stack.stop();
    await fs.rm(dataDir, { recursive: true, force: true });
  };
}
