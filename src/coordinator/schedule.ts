/**
 * A coordinator has one alarm and several kinds of timed work. Each task has at most one due time;
 * the alarm runs the due ones and is re-armed for the earliest left. A new kind of work is one more
 * name here and one more method on the coordinator.
 *
 * - restart: the coalesced restart/provision cycle (runs as soon as asked);
 * - drain:   one bounded A2A queue drain run;
 * - context: the post-restart context message, waiting (bounded) for the agent to come online;
 * - liveness: a deadline each register/heartbeat pushes forward; when it passes, the workspace
 *   goes offline and (for an agent we run) a restart is requested.
 */
export const TASKS = ['restart', 'drain', 'context', 'liveness'] as const;
export type Task = (typeof TASKS)[number];
export type Schedule = Partial<Record<Task, number>>;

/** `at` for `task`, unless it is already due earlier (a later request never delays earlier work). */
export function withTask(schedule: Schedule, task: Task, at: number): Schedule {
  const current = schedule[task];
  return { ...schedule, [task]: current === undefined ? at : Math.min(current, at) };
}

/** `at` for `task`, replacing its due time: a deadline that moves later (liveness). */
export function withDeadline(schedule: Schedule, task: Task, at: number): Schedule {
  return { ...schedule, [task]: at };
}

export function dueTasks(schedule: Schedule, now: number): Task[] {
  return TASKS.filter((t) => schedule[t] !== undefined && schedule[t]! <= now);
}

export function withoutTasks(schedule: Schedule, tasks: readonly Task[]): Schedule {
  const rest = { ...schedule };
  for (const t of tasks) delete rest[t];
  return rest;
}

/** When the alarm must next fire; undefined when nothing is scheduled. */
export function nextWake(schedule: Schedule): number | undefined {
  const times = TASKS.map((t) => schedule[t]).filter((t): t is number => t !== undefined);
  return times.length > 0 ? Math.min(...times) : undefined;
}
