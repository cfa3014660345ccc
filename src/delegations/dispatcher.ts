import { DurableObject } from 'cloudflare:workers';
import type { Bindings } from '../env';
import { runDelegation } from './dispatch';

const KEY = 'delegation';

/**
 * One per delegation (named by its id): keeps it until its alarm has dispatched it. An agent may
 * think for minutes, longer than a request's waitUntil; an alarm has a 15-minute wall budget of
 * its own and is retried when it throws. One object per delegation rather than the target's
 * coordinator, so a long call never holds up other delegations to the same agent, nor that
 * workspace's restarts and queue drains, which share the coordinator's single alarm.
 */
export class DelegationDispatcher extends DurableObject<Bindings> {
  async start(delegationId: string): Promise<void> {
    await this.ctx.storage.put(KEY, delegationId);
    await this.ctx.storage.setAlarm(Date.now());
  }

  override async alarm(): Promise<void> {
    const delegationId = await this.ctx.storage.get<string>(KEY);
    if (delegationId) await runDelegation(this.env, delegationId);
    // Done (or never started): the object keeps nothing once its delegation is recorded.
    await this.ctx.storage.deleteAll();
  }
}
