// The provisioner HTTP API the edge Worker calls (src/provisioning/provisioner.ts):
//   GET  /workspaces/:id/status  → 200 {state: "running" | "stopped" | "not_found"}
//   POST /workspaces/:id/restart → 202
// Every call carries `Authorization: Bearer <PROVISIONER_TOKEN>`. A non-2xx or an unparsable
// answer is read by the Worker as "unknown" (treated as alive), so only answer "stopped" or
// "not_found" when the container or instance is definitely gone.
export type AgentState = 'running' | 'stopped' | 'not_found';

export interface Backend {
  state(workspaceId: string): Promise<AgentState>;
  restart(workspaceId: string): Promise<void>;
}
