import { workspaces } from '../db/schema';
import { storedJson } from '../db/stored-json';

/** Columns any authorised reader may see; secrets, tokens and inbound secrets are never selected. */
export const workspaceView = {
  id: workspaces.id,
  name: workspaces.name,
  role: workspaces.role,
  parent_id: workspaces.parentId,
  runtime: workspaces.runtime,
  model: workspaces.model,
  tier: workspaces.tier,
  status: workspaces.status,
  url: workspaces.url,
  delivery_mode: workspaces.deliveryMode,
  agent_card: storedJson(workspaces.agentCard),
  active_tasks: workspaces.activeTasks,
  max_concurrent_tasks: workspaces.maxConcurrentTasks,
  last_error_rate: workspaces.lastErrorRate,
  uptime_seconds: workspaces.uptimeSeconds,
  last_heartbeat_at: workspaces.lastHeartbeatAt,
  last_outbound_at: workspaces.lastOutboundAt,
  workspace_access: workspaces.workspaceAccess,
  runtime_state: workspaces.runtimeState,
  talk_to_user_enabled: workspaces.talkToUserEnabled,
  hibernation_idle_minutes: workspaces.hibernationIdleMinutes,
  created_at: workspaces.createdAt,
  updated_at: workspaces.updatedAt,
};

/** Operator-only extras (GET /workspaces is admin): spend, current task text, sample error. */
export const workspaceAdminView = {
  ...workspaceView,
  budget_limit: workspaces.budgetLimit,
  monthly_spend: workspaces.monthlySpend,
  current_task: workspaces.currentTask,
  last_sample_error: workspaces.lastSampleError,
  workspace_dir: workspaces.workspaceDir,
};
