import type { Bindings } from '../env';
import type { WorkspaceCoordinator } from './workspace-coordinator';

// The bottom of the layering: everything that talks to a workspace's coordinator (events, the
// restart coalescer, the queue drain, delete, token revocation) reaches it through here, and this
// module imports nothing above it (the class is a type-only import).

/** The workspace's coordinator; it knows its workspace from its own name. */
export function coordinatorOf(env: Pick<Bindings, 'WORKSPACE_COORDINATOR'>, workspaceId: string): DurableObjectStub<WorkspaceCoordinator> {
  return env.WORKSPACE_COORDINATOR.getByName(workspaceId);
}

/** Internal header from the Worker to the coordinator: the id of the workspace token a subscriber connected with (absent: an operator). */
export const SUBSCRIBER_CREDENTIAL_HEADER = 'X-Molecule-Subscriber';

/** The tag of a subscriber socket opened with a workspace token. */
export const workspaceTokenSubscriber = (tokenId: string) => `workspace-token:${tokenId}`;

/** What asked for a cycle: a fresh workspace's first start, or a restart of a running one. */
export type CycleKind = 'provision' | 'restart';
