import { describe, expect, it } from "vitest";
import { isUpstreamDeadStatus } from "../../src/a2a/dead-status";

// Locked table: changing any row changes when an agent is declared dead.
const TABLE: ReadonlyArray<[status: number, dead: boolean]> = [
  [502, true],
  [503, true],
  [504, true],
  [521, true],
  [522, true],
  [523, true],
  [524, true],
  [200, false],
  [201, false],
  [400, false],
  [401, false],
  [403, false],
  [404, false],
  [429, false],
  [500, false],
  [501, false],
  [520, false], // origin answered something: alive
  [525, false], // TLS misconfiguration, not a dead agent
];

describe("isUpstreamDeadStatus", () => {
  it("table covers 18 codes: 7 dead, 11 not dead", () => {
    expect(TABLE).toHaveLength(18);
    expect(new Set(TABLE.map(([s]) => s)).size).toBe(18);
    expect(TABLE.filter(([, dead]) => dead)).toHaveLength(7);
  });

  it.each(TABLE)("%i -> dead=%s", (status, dead) => {
    expect(isUpstreamDeadStatus(status)).toBe(dead);
  });
});
