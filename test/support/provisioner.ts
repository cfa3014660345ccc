// Every test's control of the provisioner goes through this module, and it uses only what the
// protocol (src/provisioning/protocol.ts) exposes: what was asked (op, backend, purge, instance
// id, the StartRequest with its token and inbound secret), what status answers, and a failure to
// answer once. Today it drives test/support/fake-provisioner.ts; re-pointed at the real
// provisioner-agent with a Docker Engine double, the tests stay as they are.
import { env } from 'cloudflare:test';
import type { AgentState, StartRequest, StartResult } from '../../src/provisioning/protocol';
import { callJson, sql, waitFor } from './api';

export type ProvisionerOp = 'start' | 'stop' | 'status' | 'console';
/** One request as the provisioner received it; `seq` orders calls across workspaces. */
export type ProvisionerCall = { seq: number; op: ProvisionerOp; backend: 'docker' | 'ec2'; purge?: boolean; instance_id?: string | null };

const control = (path: string, init?: RequestInit) => fetch(`${env.PROVISIONER_URL}/_control/${path}`, init);

type Recorded = { calls: ProvisionerCall[]; starts: StartRequest[]; started: StartResult[] };

async function recorded(id: string): Promise<Recorded> {
  return (await (await control(`calls/${id}`)).json()) as Recorded;
}

/** Every call the provisioner received for the workspace, in order (signed ones only: others are refused). */
export async function provisionerCalls(id: string): Promise<ProvisionerCall[]> {
  return (await recorded(id)).calls;
}

/** The ops, in order, without `status` probes (what the lifecycle did, not what the proxy asked). */
export async function lifecycleOps(id: string): Promise<ProvisionerOp[]> {
  return (await provisionerCalls(id)).map((c) => c.op).filter((op) => op !== 'status');
}

/** The newest StartRequest the provisioner received for the workspace (token and inbound secret included). */
export async function startRequestOf(id: string): Promise<StartRequest | undefined> {
  return (await recorded(id)).starts.at(-1);
}

/**
 * Waits until the provisioner has answered the workspace's `count`-th start, and the Worker has
 * taken in its answer (the instance on file); the StartRequest it was sent.
 */
export async function waitForStart(id: string, count = 1, timeoutMs = 5000): Promise<StartRequest> {
  const { request, result } = await waitFor(async () => {
    const { starts, started } = await recorded(id);
    return started.length >= count ? { request: starts[count - 1]!, result: started[count - 1]! } : undefined;
  }, timeoutMs);
  if (result.instance_id) {
    await waitFor(async () => (await sql('SELECT 1 FROM workspaces WHERE id = $1 AND instance_id = $2', [id, result.instance_id])).length > 0, timeoutMs);
  }
  return request;
}

/** What status answers for the workspace's agent from now on. */
export async function setAgentState(id: string, state: AgentState): Promise<void> {
  await control(`state/${id}`, { method: 'POST', body: JSON.stringify({ state }) });
}

/** The next `op` for the workspace is answered with this status and body (protocol errors: `{error, code}`). */
export async function failNext(id: string, op: ProvisionerOp, answer: { status: number; body: unknown }): Promise<void> {
  await control(`fail/${id}`, { method: 'POST', body: JSON.stringify({ op, ...answer }) });
}

/**
 * The started agent comes up: it registers with the token the provisioner handed it (as the
 * runtime reads /configs/.auth_token), which takes the workspace from provisioning to online.
 */
export async function agentComesUp(id: string, opts: { url?: string; mode?: 'push' | 'poll'; startCount?: number } = {}) {
  const start = await waitForStart(id, opts.startCount ?? 1);
  const reg = await callJson('POST', '/registry/register', {
    token: start.auth_token,
    body: { id, agent_card: { name: 'test-agent' }, ...(opts.url ? { url: opts.url } : {}), ...(opts.mode ? { delivery_mode: opts.mode } : {}) },
  });
  if (reg.status !== 200) throw new Error(`register failed: ${reg.status} ${JSON.stringify(reg.body)}`);
  return { token: start.auth_token, inboundSecret: start.platform_inbound_secret, register: reg.body };
}
