// The service graph's model and layout: which entities and relations of /api/insights/graph are
// drawn (services, databases, external peers, topics; calls and messaging), node sizes from
// rate, and a left-to-right layered layout by call direction (dagre).
import dagre from "@dagrejs/dagre";
import type { GraphEntity, GraphRelation, InsightsGraph } from "../api";

export const DRAWN_KINDS = ["service", "database", "external", "topic"];
const DRAWN_RELATIONS = ["CALLS", "PRODUCES", "CONSUMES"];

export interface LaidOutNode {
  entity: GraphEntity;
  x: number;
  y: number;
  width: number;
  height: number;
}
export interface LaidOutEdge {
  relation: GraphRelation;
  points: { x: number; y: number }[];
}
export interface Layout {
  nodes: LaidOutNode[];
  edges: LaidOutEdge[];
  width: number;
  height: number;
}

/** Node height grows with the log of the rate so a 1000/s service does not dwarf a 1/s one. */
export function nodeHeight(rate: number): number {
  return Math.round(34 + Math.min(30, Math.max(0, Math.log10(Math.max(rate, 0.001)) + 3) * 6));
}

export function layoutGraph(graph: InsightsGraph): Layout {
  const entities = (graph.entities ?? []).filter((entity) => DRAWN_KINDS.includes(entity.kind));
  const ids = new Set(entities.map((entity) => entity.id));
  const relations = (graph.relations ?? []).filter((r) => DRAWN_RELATIONS.includes(r.kind) && ids.has(r.from) && ids.has(r.to) && r.from !== r.to);

  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 90, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const entity of entities) {
    // Wide enough for the name (bold 13 px) and the stats line ("database · 6.0/min · 0.84% err").
    const statsChars = (entity.kind === "service" ? 0 : entity.kind.length + 3) + 22;
    const width = Math.max(120, Math.min(280, 26 + Math.max(Math.min(entity.name.length, 30) * 8, statsChars * 6.4)));
    g.setNode(entity.id, { width, height: nodeHeight(entity.rate) });
  }
  relations.forEach((relation, index) => g.setEdge(relation.from, relation.to, {}, String(index)));
  dagre.layout(g);

  const nodes = entities.map((entity) => {
    const node = g.node(entity.id);
    return { entity, x: node.x - node.width / 2, y: node.y - node.height / 2, width: node.width, height: node.height };
  });
  const edges = relations.map((relation, index) => ({
    relation,
    points: (g.edge({ v: relation.from, w: relation.to, name: String(index) }).points ?? []) as { x: number; y: number }[],
  }));
  const size = g.graph();
  return { nodes, edges, width: size.width ?? 0, height: size.height ?? 0 };
}

/** Green through amber to red as the error ratio goes from 0 to 10 % and beyond. */
export function errorColor(errorRate: number): string {
  const t = Math.min(1, Math.max(0, errorRate / 0.1));
  const hue = 130 - 130 * t;
  return `hsl(${hue.toFixed(0)} 60% 45%)`;
}
