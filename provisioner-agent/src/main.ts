import fs from 'node:fs';
import type http from 'node:http';
import { EC2Client } from '@aws-sdk/client-ec2';
import Docker from 'dockerode';
import type { ProvisionerBackend } from '../../src/provisioning/protocol.ts';
import type { Backend } from './backend.ts';
import { createDockerBackend } from './docker/driver.ts';
import { tierOverridesFromEnv } from './docker/tiers.ts';
import { createEc2Backend } from './ec2/driver.ts';
import { createProvisionerServer, type Logger, stderrLog } from './server.ts';

type Env = Record<string, string | undefined>;

export const DEFAULT_SOCKET = '/var/run/docker.sock';
export const DEFAULT_AGENT_IMAGE = 'molecule/workspace-{runtime}:latest';

/**
 * Docker connection from DOCKER_HOST (unix://path or tcp://host:port), else the default socket if
 * it exists, else none: then the docker backend is not configured and answers 503 `unavailable`.
 */
export function dockerOptions(env: Env, socketExists = (p: string) => fs.existsSync(p)): Docker.DockerOptions | null {
  const host = env.DOCKER_HOST;
  if (!host) return socketExists(DEFAULT_SOCKET) ? { socketPath: DEFAULT_SOCKET } : null;
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length) };
  const tcp = /^tcp:\/\/([^:/]+):(\d{1,5})\/?$/.exec(host);
  if (tcp) return { host: tcp[1], port: Number(tcp[2]), protocol: 'http' };
  throw new Error('DOCKER_HOST must be unix:///path or tcp://host:port');
}

export function backendsFromEnv(env: Env, log: Logger = stderrLog): Partial<Record<ProvisionerBackend, Backend>> {
  const backends: Partial<Record<ProvisionerBackend, Backend>> = {};
  const docker = env.PROVISIONER_DOCKER === 'off' ? null : dockerOptions(env);
  if (docker) {
    backends.docker = createDockerBackend({
      docker: new Docker({ ...docker, timeout: 120_000 }),
      imageTemplate: env.AGENT_IMAGE || DEFAULT_AGENT_IMAGE,
      network: env.DOCKER_NETWORK || undefined,
      tierOverrides: tierOverridesFromEnv(env),
      configOwner: env.AGENT_UID ? { uid: uid(env.AGENT_UID), gid: uid(env.AGENT_GID ?? env.AGENT_UID) } : undefined,
    });
  }
  const region = env.EC2_REGION || env.AWS_REGION;
  const ec2 = {
    imageId: env.EC2_AMI_ID,
    instanceType: env.EC2_INSTANCE_TYPE,
    subnetId: env.EC2_SUBNET_ID,
    securityGroupIds: (env.EC2_SECURITY_GROUP_IDS ?? '').split(',').map((s) => s.trim()).filter(Boolean),
  };
  const ec2Set = [region, ec2.imageId, ec2.instanceType, ec2.subnetId, ec2.securityGroupIds.length ? 'y' : ''];
  if (ec2Set.every(Boolean)) {
    backends.ec2 = createEc2Backend({
      client: new EC2Client({ region }),
      imageId: ec2.imageId!,
      instanceType: ec2.instanceType!,
      subnetId: ec2.subnetId!,
      securityGroupIds: ec2.securityGroupIds,
      startCommand: env.EC2_START_COMMAND || 'systemctl start molecule-workspace',
    });
  } else if (ec2Set.some(Boolean)) {
    log('ec2 backend not configured: EC2_REGION (or AWS_REGION), EC2_AMI_ID, EC2_INSTANCE_TYPE, EC2_SUBNET_ID and EC2_SECURITY_GROUP_IDS are all required');
  }
  return backends;
}

function uid(raw: string): number {
  if (!/^\d{1,9}$/.test(raw)) throw new Error('AGENT_UID/AGENT_GID must be numeric ids');
  return Number(raw);
}

export async function main(env: Env = process.env): Promise<http.Server> {
  const secret = env.PROVISIONER_SECRET;
  if (!secret || secret.length < 32) throw new Error('PROVISIONER_SECRET is required (at least 32 characters)');
  const backends = backendsFromEnv(env);
  const server = createProvisionerServer({ secret, backends });
  const port = Number(env.PORT ?? 8790);
  const host = env.HOST ?? '127.0.0.1';
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  stderrLog('provisioner-agent listening', { host, port, backends: Object.keys(backends) });
  return server;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    stderrLog('provisioner-agent failed to start', { error: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  });
}
