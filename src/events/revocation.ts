import { coordinatorOf, workspaceTokenSubscriber } from '../coordinator';
import type { Bindings } from '../env';
import { eventHub, hubTag } from './hub';

/**
 * Workspace tokens were revoked (by an operator, a re-provision or the stale-token sweep): the live
 * feeds they opened — the workspace's own and the tenant hub — end now. They were authorised once,
 * at upgrade, so nothing else would ever close them.
 */
export async function endRevokedFeeds(env: Bindings, revoked: readonly { workspaceId: string; tokenId: string }[]): Promise<void> {
  await Promise.all(
    revoked.flatMap(({ workspaceId, tokenId }) => [
      coordinatorOf(env, workspaceId).closeSubscribers(workspaceTokenSubscriber(tokenId)),
      eventHub(env).closeSubscribers(hubTag.workspaceToken(tokenId)),
    ]),
  );
}
