import { describe, expect, it } from 'vitest';
import { dueTasks, nextWake, withoutTasks, withTask } from '../../src/coordinator/schedule';

describe('coordinator schedule (one alarm, several timed tasks)', () => {
  it('keeps the earliest due time per task, runs the due ones and re-arms for the earliest left', () => {
    let s = withTask({}, 'context', 5_000);
    s = withTask(s, 'drain', 1_000);
    s = withTask(s, 'drain', 3_000); // a later request never delays earlier work
    expect(s).toEqual({ context: 5_000, drain: 1_000 });
    expect(nextWake(s)).toBe(1_000);
    expect(dueTasks(s, 2_000)).toEqual(['drain']);
    const rest = withoutTasks(s, dueTasks(s, 2_000));
    expect(rest).toEqual({ context: 5_000 });
    expect(nextWake(rest)).toBe(5_000);
    expect(nextWake({})).toBeUndefined();
    expect(dueTasks(withTask(rest, 'restart', 0), 6_000)).toEqual(['restart', 'context']);
  });
});
