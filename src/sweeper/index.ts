import { requeueStaleDispatches } from '../a2a/queue';
import { sweepDelegations } from '../delegations/sweep';
import type { Bindings } from '../env';
import { RequestScope } from '../lib/request-scope';
import { expireQueueItems } from './queue-expiry';
import { hibernateIdleWorkspaces } from './hibernation';
import { revokeStaleTokens, stopOrphans } from './orphans';
import { failStuckProvisioning } from './provision-timeout';
import { pruneActivity, retentionDays } from './retention';

export type SweepContext = { env: Bindings; scope: RequestScope };

/**
 * One job of the cron sweeper. `run` does a bounded amount of work (the next run continues) and
 * may return how many rows it handled. `everyMinutes` thins out a pass that need not run every
 * minute (the cron fires once a minute).
 */
export type SweepPass = { name: string; everyMinutes?: number; run: (ctx: SweepContext) => Promise<number | void> };

/** The cron's passes, in order (queue expiry before the delegation pass, so expired items settle in the same run). */
export const SWEEP_PASSES: SweepPass[] = [
  { name: 'requeue stale dispatches', run: ({ scope }) => requeueStaleDispatches(scope.db) },
  { name: 'queue expiry', run: ({ scope }) => expireQueueItems(scope.db) },
  { name: 'delegations', run: ({ env, scope }) => sweepDelegations(env, scope) },
  { name: 'provision timeout', run: ({ scope }) => failStuckProvisioning(scope) },
  // SPEC §18: the idle monitor runs every 2 minutes.
  { name: 'idle hibernation', everyMinutes: 2, run: ({ scope }) => hibernateIdleWorkspaces(scope) },
  // Self-hosted only, and only on a container list that really came back (orphans.ts).
  { name: 'orphan agents', run: ({ scope }) => stopOrphans(scope) },
  { name: 'stale tokens', run: ({ scope }) => revokeStaleTokens(scope) },
  // Finding old rows scans the table (no index on created_at alone): hourly is plenty for a days-long window.
  { name: 'activity retention', everyMinutes: 60, run: ({ env, scope }) => pruneActivity(scope.db, { days: retentionDays(env) }) },
];

export type PassOutcome = { name: string; ok: boolean; count?: number; ms: number } | { name: string; skipped: true };

/**
 * Runs every due pass, each on its own: a pass that throws is logged and the next one runs anyway.
 * Passes run one after another on one request scope (a light, steady load on the datastore).
 */
export async function runSweeper(env: Bindings, opts: { now?: number; passes?: SweepPass[] } = {}): Promise<PassOutcome[]> {
  const minute = Math.floor((opts.now ?? Date.now()) / 60_000);
  const scope = new RequestScope(env);
  const outcomes: PassOutcome[] = [];
  try {
    for (const pass of opts.passes ?? SWEEP_PASSES) {
      if (pass.everyMinutes && minute % pass.everyMinutes !== 0) {
        outcomes.push({ name: pass.name, skipped: true });
        continue;
      }
      const started = Date.now();
      try {
        const count = await pass.run({ env, scope });
        const ms = Date.now() - started;
        outcomes.push({ name: pass.name, ok: true, ms, ...(typeof count === 'number' ? { count } : {}) });
        if (count) console.log(`sweeper: ${pass.name}: ${count} rows in ${ms} ms`);
      } catch (err) {
        outcomes.push({ name: pass.name, ok: false, ms: Date.now() - started });
        console.error(`sweeper: ${pass.name} failed`, err);
      }
    }
  } finally {
    await scope.close();
  }
  return outcomes;
}
