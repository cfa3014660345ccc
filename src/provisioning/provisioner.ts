import type { Bindings } from '../env';

export type Liveness = 'running' | 'not_running' | 'unknown';

/**
 * What the A2A proxy needs from whatever runs agents (provisioner-agent for Docker, the control
 * plane for EC2). The HTTP contract: `GET /workspaces/:id/status` → `{state}` and
 * `POST /workspaces/:id/restart`. With no PROVISIONER_URL there is no provisioner: liveness is
 * `unknown` and restarts are no-ops, so a healthy agent is never recycled on a guess.
 */
export interface Provisioner {
  liveness(workspaceId: string): Promise<Liveness>;
  restart(workspaceId: string): Promise<void>;
}

const STATUS_TIMEOUT_MS = 5_000;
const RESTART_TIMEOUT_MS = 30_000;

export function provisionerFor(env: Bindings): Provisioner | undefined {
  if (!env.PROVISIONER_URL) return undefined;
  return new HttpProvisioner(env.PROVISIONER_URL.replace(/\/+$/, ''), env.PROVISIONER_TOKEN);
}

class HttpProvisioner implements Provisioner {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string | undefined,
  ) {}

  /** `not_running` only on a definite answer; every uncertain case is `unknown` (treated as alive). */
  async liveness(workspaceId: string): Promise<Liveness> {
    try {
      const res = await fetch(`${this.baseUrl}/workspaces/${workspaceId}/status`, {
        headers: this.headers(),
        signal: AbortSignal.timeout(STATUS_TIMEOUT_MS),
      });
      if (!res.ok) {
        await res.body?.cancel();
        console.warn('provisioner status non-2xx', workspaceId, res.status);
        return 'unknown';
      }
      const body = (await res.json()) as { state?: unknown };
      if (body.state === 'running') return 'running';
      return typeof body.state === 'string' ? 'not_running' : 'unknown';
    } catch (err) {
      console.warn('provisioner status failed', workspaceId, err);
      return 'unknown';
    }
  }

  async restart(workspaceId: string): Promise<void> {
    const res = await fetch(`${this.baseUrl}/workspaces/${workspaceId}/restart`, {
      method: 'POST',
      headers: this.headers(),
      signal: AbortSignal.timeout(RESTART_TIMEOUT_MS),
    });
    await res.body?.cancel();
    if (!res.ok) throw new Error(`provisioner restart answered ${res.status}`);
  }

  private headers(): Record<string, string> {
    return this.token ? { Authorization: `Bearer ${this.token}` } : {};
  }
}
