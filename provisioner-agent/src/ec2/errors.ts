import { AgentError, TEXT } from '../errors.ts';

// The one place AWS answers are read. SDK v3 service exceptions carry the EC2 error code in `name`.

const NOT_FOUND = new Set(['InvalidInstanceID.NotFound', 'InvalidInstanceID.Malformed']);
const IMAGE_MISSING = new Set(['InvalidAMIID.NotFound', 'InvalidAMIID.Malformed', 'InvalidAMIID.Unavailable']);
const CONFLICT = new Set(['IncorrectInstanceState', 'IncorrectState', 'IdempotentParameterMismatch']);
const CAPACITY = new Set([
  'InsufficientInstanceCapacity',
  'InstanceLimitExceeded',
  'RequestLimitExceeded',
  'Throttling',
  'VcpuLimitExceeded',
]);

const nameOf = (err: unknown) => (err instanceof Error ? err.name : '');

export function isInstanceNotFound(err: unknown): boolean {
  return NOT_FOUND.has(nameOf(err));
}

export function ec2Error(err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  const name = nameOf(err);
  if (NOT_FOUND.has(name)) return new AgentError('not_found', TEXT.workspaceNotFound, err);
  if (IMAGE_MISSING.has(name)) return new AgentError('image_missing', TEXT.ec2ImageMissing, err);
  if (CONFLICT.has(name)) return new AgentError('conflict', TEXT.conflict, err);
  if (CAPACITY.has(name)) return new AgentError('unavailable', TEXT.ec2CapacityOrLimit, err);
  return new AgentError('unavailable', TEXT.backendFailed, err);
}
