import { PROVISIONER_ERROR_STATUS, type ProvisionerError, type ProvisionerErrorCode } from '../../src/provisioning/protocol.ts';

/**
 * A failure the Worker may see: a code from the wire contract and a fixed text. The raw daemon or
 * AWS error travels in `cause`, which only the agent's log ever reads.
 */
export class AgentError extends Error {
  readonly code: ProvisionerErrorCode;

  constructor(code: ProvisionerErrorCode, text: string, cause?: unknown) {
    super(text, { cause });
    this.code = code;
    this.name = 'AgentError';
  }

  get status(): number {
    return PROVISIONER_ERROR_STATUS[this.code];
  }

  body(): ProvisionerError {
    return { code: this.code, error: this.message };
  }
}

/** The fixed texts, so every answer with a given meaning reads the same. */
export const TEXT = {
  invalid: 'invalid request',
  tooLarge: 'request body too large',
  unauthorized: 'unauthorized',
  unknownRoute: 'unknown route',
  backendUnavailable: 'backend not configured on this provisioner',
  busy: 'provisioner busy, retry later',
  workspaceNotFound: 'workspace agent not found',
  conflict: 'operation conflicts with the current state of the workspace agent',
  changing: 'workspace agent is being started or stopped, retry later',
  backendFailed: 'provisioner backend failed',
  dockerImageMissing: 'agent image not present on the Docker host: pull or build it, or point AGENT_IMAGE at one that is',
  ec2ImageMissing: 'agent AMI not found in the configured region: check EC2_AMI_ID',
  ec2CapacityOrLimit: 'EC2 capacity or request limit reached, retry later',
  userDataTooLarge: 'start request too large for EC2 user data',
} as const;

/** Anything that is not already an AgentError is an unclassified backend failure. */
export function asAgentError(err: unknown): AgentError {
  return err instanceof AgentError ? err : new AgentError('unavailable', TEXT.backendFailed, err);
}
