import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
// @ts-expect-error plain ESM helper shared with the dev and bench scripts
import { startStack } from '../scripts/lib/stack.mjs';
import { startLoopbackServers } from './support/loopback-servers';

/**
 * Node-only (dockerode, the agent's `.ts` imports), so it is typechecked with
 * provisioner-agent/tsconfig.json and loaded here by a path this tsconfig does not follow.
 */
const PROVISIONER_CONTROL = './support/provisioner-control.ts';
type ProvisionerControl = { startProvisionerControl(secret: string): Promise<{ port: number; close(): Promise<void> }> };

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    wsProxy: string;
    loopbackPort: number;
    provisionerPort: number;
    provisionerSecret: string;
  }
}

/**
 * A fresh database per run (on the embedded cluster unless DATABASE_URL is set), loopback peers,
 * and the real provisioner-agent on a Docker Engine double (test/support/provisioner-control.ts).
 */
export default async function setup(project: TestProject) {
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'molecule-test-pg-'));
  await fs.chmod(dataDir, 0o755);
  const stack = await startStack({ dataDir: path.join(dataDir, 'data'), database: `test_${Date.now()}`, fresh: true });
  const loopback = await startLoopbackServers();
  const provisionerSecret = randomBytes(32).toString('hex');
  const { startProvisionerControl } = (await import(PROVISIONER_CONTROL)) as ProvisionerControl;
  const provisioner = await startProvisionerControl(provisionerSecret);
  project.provide('databaseUrl', stack.databaseUrl);
  project.provide('wsProxy', stack.wsProxy);
  project.provide('loopbackPort', loopback.port);
  project.provide('provisionerPort', provisioner.port);
  project.provide('provisionerSecret', provisionerSecret);
  return async () => {
    await loopback.close();
    await provisioner.close();
    await stack.stop();
    await fs.rm(dataDir, { recursive: true, force: true });
  };
}
