import {
  DescribeInstancesCommand,
  type EC2Client,
  type Filter,
  GetConsoleOutputCommand,
  type Instance,
  type _InstanceType,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import type { AgentState, StartResult, StopResult } from '../../../src/provisioning/protocol.ts';
import { agentEnv } from '../agent-env.ts';
import { type Backend, tailBytes } from '../backend.ts';
import { AgentError, TEXT } from '../errors.ts';
import { WorkspaceId } from '../schemas.ts';
import { ec2Error, isInstanceNotFound } from './errors.ts';
import { USER_DATA_MAX_BYTES, userDataScript } from './user-data.ts';

export const MANAGED_TAG = 'molecule:managed';
export const WORKSPACE_TAG = 'molecule:workspace-id';
export const AGENT_PORT = 8000;

export interface Ec2BackendConfig {
  client: EC2Client;
  imageId: string;
  instanceType: string;
  subnetId: string;
  securityGroupIds: string[];
  /** Run last by the user data; it finds the secrets and `agent.env` in /configs. */
  startCommand: string;
}

const LIVE_STATES = ['pending', 'running', 'stopping', 'stopped'];
const RUNNING_STATES = new Set(['pending', 'running']);
const MAX_PAGES = 20;
const PAGE_SIZE = 1000;
/**
 * EC2 reads are eventually consistent: for a while after RunInstances, DescribeInstances may not
 * know the new instance (by id or by tag). Within this time "not found" is not a definite answer.
 */
export const LAUNCH_SETTLE_MS = 120_000;

export function createEc2Backend(config: Ec2BackendConfig, now: () => number = Date.now): Backend {
  const { client } = config;
  /** Workspace id → when this agent last launched an instance for it. */
  const launchedAt = new Map<string, number>();
  const settling = (id: string) => {
    const at = launchedAt.get(id);
    if (at !== undefined && now() - at >= LAUNCH_SETTLE_MS) launchedAt.delete(id);
    return at !== undefined && now() - at < LAUNCH_SETTLE_MS;
  };

  /** Every page, or an error: a silently partial list would read as "these workspaces are gone". */
  async function describe(filters: Filter[], instanceIds?: string[]): Promise<Instance[]> {
    const instances: Instance[] = [];
    let NextToken: string | undefined;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const out = await client.send(
        new DescribeInstancesCommand({ Filters: filters, InstanceIds: instanceIds, NextToken, ...(instanceIds ? {} : { MaxResults: PAGE_SIZE }) }),
      );
      for (const reservation of out.Reservations ?? []) instances.push(...(reservation.Instances ?? []));
      NextToken = out.NextToken;
      if (!NextToken) return instances;
    }
    throw new AgentError('unavailable', TEXT.backendFailed, new Error(`DescribeInstances: more than ${MAX_PAGES} pages`));
  }

  /**
   * The workspace's instances, only ever ones carrying both of our tags: an instance_id from the
   * request is a hint, never permission to touch an instance this agent did not launch.
   */
  async function workspaceInstances(id: string, instanceId: string | null, states?: string[]): Promise<Instance[]> {
    const filters: Filter[] = [
      { Name: `tag:${MANAGED_TAG}`, Values: ['true'] },
      { Name: `tag:${WORKSPACE_TAG}`, Values: [id] },
      ...(states ? [{ Name: 'instance-state-name', Values: states }] : []),
    ];
    try {
      return await describe(filters, instanceId ? [instanceId] : undefined);
    } catch (err) {
      if (isInstanceNotFound(err)) return [];
      throw ec2Error(err);
    }
  }

  async function terminate(instances: Instance[]): Promise<void> {
    const ids = instances.map((i) => i.InstanceId).filter((i): i is string => !!i);
    if (ids.length === 0) return;
    try {
      await client.send(new TerminateInstancesCommand({ InstanceIds: ids }));
    } catch (err) {
      if (!isInstanceNotFound(err)) throw ec2Error(err);
    }
  }

  return {
    async start(id, request): Promise<StartResult> {
      const script = userDataScript(
        { authToken: request.auth_token, inboundSecret: request.platform_inbound_secret, env: { ...agentEnv(id, request), RUNTIME: request.runtime } },
        config.startCommand,
      );
      if (Buffer.byteLength(script) > USER_DATA_MAX_BYTES) throw new AgentError('invalid', TEXT.userDataTooLarge);
      // Idempotent for the restart cycle: a previous instance of this workspace is replaced.
      await terminate(await workspaceInstances(id, null, LIVE_STATES));
      const tags = [
        { Key: WORKSPACE_TAG, Value: id },
        { Key: MANAGED_TAG, Value: 'true' },
        { Key: 'Name', Value: `ws-${id}` },
      ];
      try {
        const out = await client.send(
          new RunInstancesCommand({
            ImageId: config.imageId,
            InstanceType: config.instanceType as _InstanceType,
            SubnetId: config.subnetId,
            SecurityGroupIds: config.securityGroupIds,
            MinCount: 1,
            MaxCount: 1,
            UserData: Buffer.from(script, 'utf8').toString('base64'),
            TagSpecifications: [{ ResourceType: 'instance', Tags: tags }],
            // The user data carries the workspace's secrets: IMDSv1 would hand them to any SSRF
            // from the agent (GET 169.254.169.254/latest/user-data). v2 needs a PUT with a header,
            // and one hop keeps containers on the instance from reaching it.
            MetadataOptions: { HttpEndpoint: 'enabled', HttpTokens: 'required', HttpPutResponseHopLimit: 1 },
          }),
        );
        const instance = out.Instances?.[0];
        if (!instance?.InstanceId) throw new Error('RunInstances answered without an instance');
        launchedAt.set(id, now());
        return {
          instance_id: instance.InstanceId,
          url: instance.PrivateIpAddress ? `http://${instance.PrivateIpAddress}:${AGENT_PORT}` : null,
        };
      } catch (err) {
        // A NotFound here is not "the workspace is gone": never let it read as not_found.
        const failure = ec2Error(err);
        throw failure.code === 'not_found' ? new AgentError('unavailable', TEXT.backendFailed, err) : failure;
      }
    },

    async stop(id, request): Promise<StopResult> {
      // Every live instance of the workspace, not only the one on file: the id the Worker holds may
      // be stale (a start whose answer was lost launched another), and stop means none is left.
      // The hint is still looked up, ours only, for an instance the tag filter does not show yet.
      const tagged = await workspaceInstances(id, null, LIVE_STATES);
      const hint = request.instance_id ?? null;
      const hinted = hint && !tagged.some((i) => i.InstanceId === hint) ? await workspaceInstances(id, hint, LIVE_STATES) : [];
      await terminate([...tagged, ...hinted]);
      launchedAt.delete(id);
      // The configs live on the instance's root volume, which terminates with it; no separate volume.
      return { stopped: true, volume_removed: false };
    },

    async status(id, instanceId): Promise<AgentState> {
      const instances = await workspaceInstances(id, instanceId);
      if (instances.length === 0) {
        if (settling(id)) throw new AgentError('conflict', TEXT.changing);
        return 'not_found';
      }
      // Pending counts as running: it is on its way up, and "stopped" would trigger a restart.
      return instances.some((i) => RUNNING_STATES.has(i.State?.Name ?? '')) ? 'running' : 'stopped';
    },

    async console(id, instanceId): Promise<string> {
      const instances = await workspaceInstances(id, instanceId);
      const newest = instances
        .filter((i) => i.InstanceId)
        .sort((a, b) => (b.LaunchTime?.getTime() ?? 0) - (a.LaunchTime?.getTime() ?? 0))[0];
      if (!newest) throw new AgentError('not_found', TEXT.workspaceNotFound);
      try {
        const out = await client.send(new GetConsoleOutputCommand({ InstanceId: newest.InstanceId }));
        return tailBytes(Buffer.from(out.Output ?? '', 'base64'));
      } catch (err) {
        throw ec2Error(err);
      }
    },

    async list(): Promise<string[]> {
      let instances: Instance[];
      try {
        instances = await describe([
          { Name: `tag:${MANAGED_TAG}`, Values: ['true'] },
          { Name: 'instance-state-name', Values: LIVE_STATES },
        ]);
      } catch (err) {
        throw ec2Error(err);
      }
      const ids = instances
        .map((i) => i.Tags?.find((t) => t.Key === WORKSPACE_TAG)?.Value)
        .filter((id): id is string => WorkspaceId.safeParse(id).success);
      return [...new Set(ids)].sort();
    },
  };
}
