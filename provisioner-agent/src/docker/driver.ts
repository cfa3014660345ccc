import type Docker from 'dockerode';
import type { AgentState, StartRequest, StartResult, StopRequest, StopResult } from '../../../src/provisioning/protocol.ts';
import { agentEnv, CONFIG_DIR } from '../agent-env.ts';
import type { Backend } from '../backend.ts';
import { AgentError, TEXT } from '../errors.ts';
import { WorkspaceId } from '../schemas.ts';
import { readLogTail } from './logs.ts';
import { isConflict, isGone, isRemovalInProgress, readError, removeError, startError } from './errors.ts';
import { tarArchive } from './tar.ts';
import { cpuSharesToNanoCpus, type TierOverrides, tierSettings } from './tiers.ts';

export const MANAGED_LABEL = 'molecule.platform.managed';
export const WORKSPACE_LABEL = 'molecule.workspace_id';
export const AGENT_PORT = 8000;

// The full workspace id, not the 12-character prefix the Go platform used: prefixes of distinct
// uuids can collide, and the orphan sweeper then stops the wrong workspace.
export const containerName = (workspaceId: string) => `ws-${workspaceId}`;
export const configVolumeName = (workspaceId: string) => `ws-${workspaceId}-configs`;

export interface DockerBackendConfig {
  docker: Docker;
  /** AGENT_IMAGE; `{runtime}` is replaced by the request's (validated) runtime. */
  imageTemplate: string;
  /** DOCKER_NETWORK: join this network with the container name as alias. */
  network?: string;
  tierOverrides?: TierOverrides;
  /** Host address the agent port is published on (an ephemeral port). */
  publishHost?: string;
  /** Owner of the secret files, for images whose agent does not run as root. */
  configOwner?: { uid: number; gid: number };
  /** How long to wait for a concurrent removal to finish before giving up (ms). */
  removalWaitMs?: number;
  /** Lines of log to fetch for the console, before the byte cap. */
  consoleTailLines?: number;
  /** How long a console read may take before it is abandoned (ms); below the Worker's 15 s. */
  consoleTimeoutMs?: number;
}

export const CONSOLE_TIMEOUT_MS = 5_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function createDockerBackend(config: DockerBackendConfig): Backend {
  const { docker } = config;
  const publishHost = config.publishHost ?? '127.0.0.1';
  const owner = config.configOwner ?? { uid: 0, gid: 0 };
  const removalWaitMs = config.removalWaitMs ?? 10_000;

  /** Force-removes the container: 'removed', 'absent', or 'in_progress' (another removal races us). */
  async function removeContainer(id: string): Promise<'removed' | 'absent' | 'in_progress'> {
    try {
      await docker.getContainer(containerName(id)).remove({ force: true });
      return 'removed';
    } catch (err) {
      if (isRemovalInProgress(err)) return 'in_progress';
      if (isGone(err)) return 'absent';
      throw removeError(err);
    }
  }

  async function waitUntilGone(id: string): Promise<void> {
    const deadline = Date.now() + removalWaitMs;
    for (;;) {
      try {
        await docker.getContainer(containerName(id)).inspect();
      } catch (err) {
        if (isGone(err)) return;
        throw removeError(err);
      }
      if (Date.now() >= deadline) throw new AgentError('conflict', TEXT.conflict);
      await sleep(200);
    }
  }

  function containerSpec(id: string, request: StartRequest): Docker.ContainerCreateOptions {
    const tier = tierSettings(request.tier, config.tierOverrides);
    const name = containerName(id);
    const labels = { [MANAGED_LABEL]: 'true', [WORKSPACE_LABEL]: id };
    const env = agentEnv(id, request);
    const network = tier.hostNetwork ? 'host' : config.network;
    return {
      name,
      Image: config.imageTemplate.replaceAll('{runtime}', request.runtime),
      Env: Object.entries(env).map(([key, value]) => `${key}=${value}`),
      Labels: labels,
      Tty: false,
      ExposedPorts: { [`${AGENT_PORT}/tcp`]: {} },
      HostConfig: {
        Binds: [`${configVolumeName(id)}:${CONFIG_DIR}`, ...(tier.dockerSocket ? ['/var/run/docker.sock:/var/run/docker.sock'] : [])],
        Memory: tier.memoryMb * 1024 * 1024,
        MemorySwap: tier.memoryMb * 1024 * 1024,
        CpuShares: tier.cpuShares,
        NanoCpus: cpuSharesToNanoCpus(tier.cpuShares),
        RestartPolicy: { Name: 'unless-stopped' },
        ReadonlyRootfs: tier.readonlyRootfs,
        ...(tier.readonlyRootfs ? { Tmpfs: { '/tmp': 'rw,size=64m' } } : {}),
        Privileged: tier.privileged,
        ...(tier.hostPid ? { PidMode: 'host' } : {}),
        ...(network ? { NetworkMode: network } : {}),
        ...(tier.hostNetwork ? {} : { PortBindings: { [`${AGENT_PORT}/tcp`]: [{ HostIp: publishHost, HostPort: '' }] } }),
      },
      ...(network && !tier.hostNetwork ? { NetworkingConfig: { EndpointsConfig: { [network]: { Aliases: [name] } } } } : {}),
    };
  }

  async function createContainer(id: string, spec: Docker.ContainerCreateOptions): Promise<Docker.Container> {
    try {
      return await docker.createContainer(spec);
    } catch (err) {
      // A name clash means a removal was still finishing: wait for it once, then try again.
      if (!isConflict(err)) throw startError(err);
    }
    await waitUntilGone(id);
    try {
      return await docker.createContainer(spec);
    } catch (err) {
      throw startError(err);
    }
  }

  function urlOf(id: string, info: Docker.ContainerInspectInfo, hostNetwork: boolean): string {
    if (hostNetwork) return `http://127.0.0.1:${AGENT_PORT}`;
    const port = info.NetworkSettings?.Ports?.[`${AGENT_PORT}/tcp`]?.find((binding) => binding.HostPort)?.HostPort;
    return port ? `http://${publishHost}:${port}` : `http://${containerName(id)}:${AGENT_PORT}`;
  }

  return {
    async start(id, request): Promise<StartResult> {
      // Idempotent for the restart cycle: whatever ran before is replaced.
      if ((await removeContainer(id)) === 'in_progress') await waitUntilGone(id);
      try {
        await docker.createVolume({ Name: configVolumeName(id), Labels: { [MANAGED_LABEL]: 'true', [WORKSPACE_LABEL]: id } });
      } catch (err) {
        throw startError(err);
      }
      const spec = containerSpec(id, request);
      const container = await createContainer(id, spec);
      try {
        const secretFile = (name: string, content: string) => ({ name, content, mode: 0o600, ...owner });
        const archive = await tarArchive([
          secretFile('.auth_token', request.auth_token),
          secretFile('.platform_inbound_secret', request.platform_inbound_secret),
        ]);
        // Written before start, so the agent's first read already sees this cycle's secrets.
        await container.putArchive(archive, { path: CONFIG_DIR });
        await container.start();
        const info = await container.inspect();
        return { url: urlOf(id, info, spec.HostConfig?.NetworkMode === 'host'), instance_id: null };
      } catch (err) {
        // Leave nothing half-started behind; the next start would remove it anyway.
        await container.remove({ force: true }).catch(() => undefined);
        throw startError(err);
      }
    },

    async stop(id, request: StopRequest): Promise<StopResult> {
      const removal = await removeContainer(id);
      if (!request.purge) return { stopped: true, volume_removed: false };
      // The volume stays in use until a racing removal completes.
      if (removal === 'in_progress') await waitUntilGone(id);
      try {
        await docker.getVolume(configVolumeName(id)).remove();
      } catch (err) {
        if (!isGone(err)) throw removeError(err);
      }
      return { stopped: true, volume_removed: true };
    },

    async status(id): Promise<AgentState> {
      try {
        const info = await docker.getContainer(containerName(id)).inspect();
        return info.State?.Running ? 'running' : 'stopped';
      } catch (err) {
        if (isGone(err)) return 'not_found';
        throw readError(err);
      }
    },

    async console(id): Promise<string> {
      try {
        return await readLogTail(docker.getContainer(containerName(id)), {
          tailLines: config.consoleTailLines ?? 2000,
          timeoutMs: config.consoleTimeoutMs ?? CONSOLE_TIMEOUT_MS,
        });
      } catch (err) {
        throw readError(err);
      }
    },

    async list(): Promise<string[]> {
      let containers: Docker.ContainerInfo[];
      try {
        containers = await docker.listContainers({ all: true, filters: { label: [`${MANAGED_LABEL}=true`] } });
      } catch (err) {
        throw readError(err);
      }
      const ids = containers.map((c) => c.Labels?.[WORKSPACE_LABEL]).filter((id): id is string => WorkspaceId.safeParse(id).success);
      return [...new Set(ids)].sort();
    },
  };
}
