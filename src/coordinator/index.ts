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
/** The tag of a subscriber socket opened with an org token. */
export const orgTokenSubscriber = (tokenId: string) => `org-token:${tokenId}`;

/** What the Worker tells the coordinator about a subscriber's credential (header value `kind:tokenId`). */
export type SubscriberCredential = { kind: 'workspace' | 'org'; tokenId: string };
export const subscriberHeaderValue = (c: SubscriberCredential) => `${c.kind}:${c.tokenId}`;
export function parseSubscriberHeader(value: string | null): SubscriberCredential | undefined {
  const match = value ? /^(workspace|org):([0-9a-f-]{36})$/.exec(value) : null;
  return match ? { kind: match[1] as SubscriberCredential['kind'], tokenId: match[2]! } : undefined;
}

/** What asked for a cycle: a fresh workspace's first start, or a restart of a running one. */
export type CycleKind = 'provision' | 'restart';
