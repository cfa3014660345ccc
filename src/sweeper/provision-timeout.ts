import { sql } from 'drizzle-orm';
import type { Bindings } from '../env';
import { forgetContexts } from '../a2a/context-cache';
import { publishEvent } from '../events/publish';
import type { RequestScope } from '../lib/request-scope';

/** SPEC §19: 10 minutes, 30 for hermes (it installs at boot); PROVISION_TIMEOUT_SECONDS overrides both. */
const DEFAULT_TIMEOUT_S = 600;
const HERMES_TIMEOUT_S = 1800;
/** Workspaces failed per run: each costs a recorded event and two broadcasts (subrequests). */
export const PROVISION_TIMEOUT_BATCH = 100;
export const PROVISION_TIMEOUT_TEXT = 'provisioning timed out';

function overrideSeconds(env: Pick<Bindings, 'PROVISION_TIMEOUT_SECONDS'>): number | null {
  const n = Number(env.PROVISION_TIMEOUT_SECONDS);
  return env.PROVISION_TIMEOUT_SECONDS && Number.isInteger(n) && n > 0 && n <= 7 * 86_400 ? n : null;
}

/**
 * Workspaces stuck in `provisioning` past their timeout (counted from `provisioning_since`, which
 * a trigger sets whenever a workspace enters provisioning) go `failed`. One statement re-checks
 * the condition on every row it changes, so an agent that registers at the last moment wins.
 * The backstop for a start that never answered, or a cycle that died with its alarm.
 */
export async function failStuckProvisioning(scope: RequestScope, opts: { workspaceIds?: string[] } = {}): Promise<number> {
  const override = overrideSeconds(scope.env);
  const timeout = sql`(CASE WHEN ${override}::int IS NOT NULL THEN ${override}::int WHEN runtime = 'hermes' THEN ${HERMES_TIMEOUT_S} ELSE ${DEFAULT_TIMEOUT_S} END)`;
  const only = opts.workspaceIds ? sql`AND id IN ${opts.workspaceIds}` : sql``;
  const result = await scope.db.execute<{ id: string; runtime: string; timeout_secs: number }>(sql`
    UPDATE workspaces SET status = 'failed', last_sample_error = ${PROVISION_TIMEOUT_TEXT}, updated_at = now()
     WHERE id IN (SELECT id FROM workspaces
                   WHERE status = 'provisioning' AND provisioning_since < now() - make_interval(secs => ${timeout}) ${only}
                   LIMIT ${PROVISION_TIMEOUT_BATCH}
                   FOR UPDATE SKIP LOCKED)
       AND status = 'provisioning' AND provisioning_since < now() - make_interval(secs => ${timeout})
    RETURNING id, runtime, ${timeout} AS timeout_secs`);
  forgetContexts({ workspaceIds: result.rows.map((r) => r.id) });
  for (const row of result.rows) {
    publishEvent(scope, 'WORKSPACE_PROVISION_FAILED', row.id, {
      error: PROVISION_TIMEOUT_TEXT,
      timeout_secs: Number(row.timeout_secs),
      runtime: row.runtime,
      source: 'provision_timeout_sweep',
    });
  }
  return result.rows.length;
}
