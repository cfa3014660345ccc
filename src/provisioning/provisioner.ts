import { z } from 'zod';
import type { Bindings } from '../env';
import { KiB, readStreamCapped } from '../lib/body';
import {
  CONSOLE_RESULT_MAX_BYTES,
  PROVISIONER_ERROR_STATUS,
  signRequest,
  type ConsoleResult,
  type ListResult,
  type ProvisionerBackend,
  type ProvisionerErrorCode,
  type StartRequest,
  type StartResult,
  type StopResult,
} from './protocol';

/**
 * The Worker's side of the provisioner-agent protocol (protocol.ts). One switch decides what runs
 * agents: PROVISIONER_URL (+ PROVISIONER_SECRET) names the agent, MOLECULE_DEPLOY_MODE its backend
 * (self-hosted → docker, saas → ec2). No PROVISIONER_URL → no provisioner, and every caller is a
 * no-op (liveness `unknown`, nothing started or stopped), so a healthy agent is never recycled on
 * a guess.
 */
export interface Provisioner {
  readonly backend: ProvisionerBackend;
  start(workspaceId: string, request: StartRequest): Promise<Outcome<StartResult>>;
  stop(workspaceId: string, args: { purge: boolean; instanceId: string | null; timeoutMs?: number }): Promise<Outcome<StopResult>>;
  /** `not_running` only on a definite answer; every uncertain one is `unknown` (SPEC §17 IsRunning). */
  liveness(workspaceId: string, instanceId: string | null): Promise<Liveness>;
  console(workspaceId: string, instanceId: string | null): Promise<Outcome<ConsoleResult>>;
  /** Every workspace the backend runs an agent for (the orphan sweeper's view of the world). */
  list(): Promise<Outcome<ListResult>>;
}

export type Liveness = 'running' | 'not_running' | 'unknown';

/**
 * A call's result, classified. The agent's own error text, HTTP bodies and transport messages
 * never leave this module: callers (and so broadcasts and responses) see only these kinds.
 */
export type Outcome<T> = { ok: true; value: T } | { ok: false; failure: ProvisionerFailure };
export type ProvisionerFailure =
  | { kind: 'refused'; code: ProvisionerErrorCode | 'unknown'; status: number }
  | { kind: 'timeout' }
  | { kind: 'unreachable' }
  | { kind: 'bad_response' };

/** The backend, decided here and nowhere else. Anything but `saas` runs agents next to the platform. */
export function provisionerBackend(env: Pick<Bindings, 'MOLECULE_DEPLOY_MODE'>): ProvisionerBackend {
  return (env.MOLECULE_DEPLOY_MODE ?? '').toLowerCase() === 'saas' ? 'ec2' : 'docker';
}

export function provisionerFor(env: Pick<Bindings, 'PROVISIONER_URL' | 'PROVISIONER_SECRET' | 'MOLECULE_DEPLOY_MODE'>): Provisioner | undefined {
  if (!env.PROVISIONER_URL) return undefined;
  return new HttpProvisioner(env.PROVISIONER_URL.replace(/\/+$/, ''), env.PROVISIONER_SECRET ?? '', provisionerBackend(env));
}

// Timeouts. A start pulls an image or boots an instance (SPEC §17: a 3-minute provision context);
// it runs in the coordinator's alarm, whose 15-minute wall time leaves room for a stop before it.
export const TIMEOUTS_MS = { status: 5_000, start: 180_000, stop: 120_000, console: 15_000, list: 15_000 } as const;
const BODY_CAP = 64 * KiB;
// The agent's whole answer, not just its output: a full 256 KiB tail is larger once JSON-escaped.
const CONSOLE_CAP = CONSOLE_RESULT_MAX_BYTES;
/** 100,000 ids of 39 bytes each fit; a longer list is refused rather than read half. */
const LIST_CAP = 4 * 1024 * KiB;

const StartResultSchema = z.object({ url: z.string().max(2048).nullable(), instance_id: z.string().max(256).nullable() });
const StopResultSchema = z.object({ stopped: z.literal(true), volume_removed: z.boolean() });
const StatusResultSchema = z.object({ state: z.enum(['running', 'stopped', 'not_found']) });
const ConsoleResultSchema = z.object({ output: z.string() });
const ListResultSchema = z.object({ workspace_ids: z.array(z.uuid()).max(100_000) });
const ErrorSchema = z.object({ code: z.string() });

type Call = { method: 'GET' | 'POST'; path: string; body?: unknown; timeoutMs: number; cap?: number };

/**
 * Where each operation goes for each backend: the one place the dispatch branches. Docker names
 * the container by workspace id; EC2 needs the instance id on file, and without one there is
 * nothing to stop (success) and nothing running (SPEC §17 CP contract), so no request is sent.
 */
export function dispatchPlan(
  backend: ProvisionerBackend,
  op: 'start' | 'stop' | 'status' | 'console',
  workspaceId: string,
  instanceId: string | null,
): { path: string } | { settled: 'nothing_running' } {
  const base = `/v1/${backend}/workspaces/${encodeURIComponent(workspaceId)}/${op}`;
  if (backend === 'docker' || op === 'start') return { path: base };
  if (!instanceId) return { settled: 'nothing_running' };
  return op === 'stop' ? { path: base } : { path: `${base}?instance_id=${encodeURIComponent(instanceId)}` };
}

class HttpProvisioner implements Provisioner {
  constructor(
    private readonly baseUrl: string,
    private readonly secret: string,
    readonly backend: ProvisionerBackend,
  ) {}

  async start(workspaceId: string, request: StartRequest): Promise<Outcome<StartResult>> {
    const plan = dispatchPlan(this.backend, 'start', workspaceId, null);
    if (!('path' in plan)) return { ok: false, failure: { kind: 'bad_response' } };
    return this.call({ method: 'POST', path: plan.path, body: request, timeoutMs: TIMEOUTS_MS.start }, StartResultSchema);
  }

  async stop(workspaceId: string, args: { purge: boolean; instanceId: string | null; timeoutMs?: number }): Promise<Outcome<StopResult>> {
    const plan = dispatchPlan(this.backend, 'stop', workspaceId, args.instanceId);
    if (!('path' in plan)) return { ok: true, value: { stopped: true, volume_removed: false } };
    const body = { purge: args.purge, ...(args.instanceId ? { instance_id: args.instanceId } : {}) };
    return this.call({ method: 'POST', path: plan.path, body, timeoutMs: args.timeoutMs ?? TIMEOUTS_MS.stop }, StopResultSchema);
  }

  async liveness(workspaceId: string, instanceId: string | null): Promise<Liveness> {
    const plan = dispatchPlan(this.backend, 'status', workspaceId, instanceId);
    if (!('path' in plan)) return 'not_running';
    const outcome = await this.call({ method: 'GET', path: plan.path, timeoutMs: TIMEOUTS_MS.status }, StatusResultSchema);
    if (!outcome.ok) return 'unknown';
    return outcome.value.state === 'running' ? 'running' : 'not_running';
  }

  async console(workspaceId: string, instanceId: string | null): Promise<Outcome<ConsoleResult>> {
    const plan = dispatchPlan(this.backend, 'console', workspaceId, instanceId);
    if (!('path' in plan)) return { ok: false, failure: { kind: 'refused', code: 'not_found', status: 404 } };
    return this.call({ method: 'GET', path: plan.path, timeoutMs: TIMEOUTS_MS.console, cap: CONSOLE_CAP }, ConsoleResultSchema);
  }

  async list(): Promise<Outcome<ListResult>> {
    return this.call({ method: 'GET', path: `/v1/${this.backend}/workspaces`, timeoutMs: TIMEOUTS_MS.list, cap: LIST_CAP }, ListResultSchema);
  }

  /** One signed request; the answer is capped and validated, and every failure is classified and logged here. */
  private async call<T>(call: Call, schema: z.ZodType<T>): Promise<Outcome<T>> {
    const url = new URL(this.baseUrl + call.path);
    const body = call.body === undefined ? '' : JSON.stringify(call.body);
    const op = `${call.method} ${call.path.split('?')[0]}`;
    let res: Response;
    try {
      const signed = await signRequest(this.secret, call.method, url.pathname + url.search, body);
      res = await fetch(url, {
        method: call.method,
        headers: { ...signed, ...(body ? { 'Content-Type': 'application/json' } : {}) },
        body: body || undefined,
        signal: AbortSignal.timeout(call.timeoutMs),
      });
    } catch (err) {
      const timeout = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      console.warn('provisioner call failed', op, timeout ? 'timeout' : 'unreachable');
      return { ok: false, failure: timeout ? { kind: 'timeout' } : { kind: 'unreachable' } };
    }
    let parsed: unknown;
    try {
      const bytes = await readStreamCapped(res.body, call.cap ?? BODY_CAP);
      parsed = bytes === 'too_large' ? undefined : JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const code = ErrorSchema.safeParse(parsed);
      const known = code.success && code.data.code in PROVISIONER_ERROR_STATUS ? (code.data.code as ProvisionerErrorCode) : 'unknown';
      console.warn('provisioner refused', op, res.status, known);
      return { ok: false, failure: { kind: 'refused', code: known, status: res.status } };
    }
    const value = schema.safeParse(parsed);
    if (!value.success) {
      console.warn('provisioner answer did not match the protocol', op, res.status);
      return { ok: false, failure: { kind: 'bad_response' } };
    }
    return { ok: true, value: value.data };
  }
}
