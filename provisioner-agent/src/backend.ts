import { CONSOLE_OUTPUT_MAX_BYTES, type AgentState, type StartRequest, type StartResult, type StopRequest, type StopResult } from '../../src/provisioning/protocol.ts';

/**
 * What runs agents (a Docker engine, EC2). Every method throws an AgentError on failure, already
 * classified, with the raw cause attached for the log.
 */
export interface Backend {
  start(workspaceId: string, request: StartRequest): Promise<StartResult>;
  /** Idempotent: an agent that is already gone is a success. */
  stop(workspaceId: string, request: StopRequest): Promise<StopResult>;
  /** `stopped`/`not_found` only when definitely not running; an uncertain answer throws. */
  status(workspaceId: string, instanceId: string | null): Promise<AgentState>;
  console(workspaceId: string, instanceId: string | null): Promise<string>;
  list(): Promise<string[]>;
}

export const CONSOLE_CAP_BYTES = CONSOLE_OUTPUT_MAX_BYTES;

/** The last `cap` bytes of `bytes` as text, cut on a character boundary. */
export function tailBytes(bytes: Buffer, cap = CONSOLE_CAP_BYTES): string {
  if (bytes.length <= cap) return bytes.toString('utf8');
  let start = bytes.length - cap;
  // Skip UTF-8 continuation bytes so the cut never splits a character.
  while (start < bytes.length && (bytes[start]! & 0xc0) === 0x80) start += 1;
  return bytes.subarray(start).toString('utf8');
}
