// A service's instances from the insights entity graph: each `instance:<service>:<name>` entity
// with the node it is HOSTED_ON and the versions the deploys list saw it run.
import type { InsightsGraph } from "../api";

export interface InstanceRow {
  id: string;
  name: string;
  node?: string;
  /** Newest first (by when the version was first seen). */
  versions: string[];
  rate: number;
  errorRate: number;
  p50Ms: number;
  p99Ms: number;
  assertions: number;
}

export function serviceInstances(graph: InsightsGraph, service: string): InstanceRow[] {
  const entities = graph.entities ?? [];
  const nameOf = new Map(entities.map((entity) => [entity.id, entity.name]));
  const nodeOf = new Map<string, string>();
  for (const relation of graph.relations ?? []) {
    if (relation.kind === "HOSTED_ON") nodeOf.set(relation.from, nameOf.get(relation.to) ?? relation.to.replace(/^node:/, ""));
  }
  const deploys = (graph.deploys ?? []).filter((deploy) => deploy.service === service).sort((a, b) => compareNanos(b.firstSeen, a.firstSeen));
  const rows = entities
    .filter((entity) => entity.kind === "instance" && entity.service === service)
    .map((entity) => ({
      id: entity.id,
      name: entity.name,
      node: nodeOf.get(entity.id),
      versions: deploys.filter((deploy) => (deploy.instances ?? []).includes(entity.name)).map((deploy) => deploy.version),
      rate: entity.rate,
      errorRate: entity.errorRate,
      p50Ms: entity.p50Ms,
      p99Ms: entity.p99Ms,
      assertions: entity.assertions,
    }));
  // The ones to look at first: active assertions, then errors, then the busiest; ties by name.
  return rows.sort((a, b) => b.assertions - a.assertions || b.errorRate - a.errorRate || b.rate - a.rate || a.name.localeCompare(b.name));
}

/** Orders unix-nanosecond strings exactly (they exceed 2^53, so not as numbers). */
function compareNanos(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
