import type { RequestScope } from './lib/request-scope';
import type { DelegationDispatcher } from './delegations/dispatcher';
import type { ActivityWriter } from './activity/writer';
import type { WorkspaceCoordinator } from './coordinator/workspace-coordinator';
import type { EventHub } from './events/hub';

/** Bindings from wrangler.toml, `wrangler secret put` and (locally) .dev.vars. */
export type Bindings = {
  DATABASE_URL: string;
  /**
   * Local only: host:port/path of the WebSocket relay in front of a plain Postgres. The same relay
   * serves Neon's SQL-over-HTTP protocol at http://host:port/sql (used as `neonConfig.fetchEndpoint`).
   */
  NEON_WS_PROXY?: string;
  ADMIN_TOKEN?: string;
  /** base64 of 32 bytes: AES-256-GCM key for secrets at rest. */
  SECRETS_ENCRYPTION_KEY?: string;
  /** `development`/`dev` enables loopback agent URLs (and open admin when ADMIN_TOKEN is unset). */
  MOLECULE_ENV?: string;
  /**
   * `saas` or `self-hosted`: whether agent URLs on private networks are acceptable, and which
   * provisioner backend runs agents (saas → ec2, anything else → docker).
   */
  MOLECULE_DEPLOY_MODE?: string;
  EXTERNAL_PLATFORM_URL?: string;
  /** The provisioner-agent's base URL; unset = no provisioner (nothing is started or stopped). */
  PROVISIONER_URL?: string;
  /** Shared HMAC secret signing every request to the provisioner-agent (protocol.ts). */
  PROVISIONER_SECRET?: string;
  /** Seconds an agent may send nothing during a dispatch (default 300; a heartbeat's `idle_timeout_seconds` overrides it per workspace). */
  A2A_IDLE_TIMEOUT_SECONDS?: string;
  /** Days of activity rows the cron keeps (default 7). */
  ACTIVITY_RETENTION_DAYS?: string;
  /** Seconds of heartbeat silence before an agent we run is marked offline and restarted (default 180). */
  LIVENESS_TTL_SECONDS?: string;
  /** The same for external agents, which are only marked offline (default 90). */
  REMOTE_LIVENESS_STALE_AFTER?: string;
  /** Seconds a workspace may stay `provisioning` before it is failed (default 600; hermes 1800). */
  PROVISION_TIMEOUT_SECONDS?: string;
  WORKSPACE_COORDINATOR: DurableObjectNamespace<WorkspaceCoordinator>;
  DELEGATION_DISPATCHER: DurableObjectNamespace<DelegationDispatcher>;
  ACTIVITY_WRITER: DurableObjectNamespace<ActivityWriter>;
  EVENT_HUB: DurableObjectNamespace<EventHub>;
};

export type Variables = {
  scope: RequestScope;
};

export type AppEnv = { Bindings: Bindings; Variables: Variables };

export function isDevMode(env: Pick<Bindings, 'MOLECULE_ENV'>): boolean {
  return env.MOLECULE_ENV === 'development' || env.MOLECULE_ENV === 'dev';
}
