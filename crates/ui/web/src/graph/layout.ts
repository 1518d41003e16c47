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
  /** Where the grid of entities without drawn relations starts (y), if there are any. */
  looseFrom?: number;
}

/** Node height grows with the log of the rate so a 1000/s service does not dwarf a 1/s one. */
export function nodeHeight(rate: number): number {
  return Math.round(34 + Math.min(30, Math.max(0, Math.log10(Math.max(rate, 0.001)) + 3) * 6));
}

export function layoutGraph(graph: InsightsGraph): Layout {
  const entities = (graph.entities ?? []).filter((entity) => DRAWN_KINDS.includes(entity.kind));
  const ids = new Set(entities.map((entity) => entity.id));
  const relations = (graph.relations ?? []).filter((r) => DRAWN_RELATIONS.includes(r.kind) && ids.has(r.from) && ids.has(r.to) && r.from !== r.to);

  // Entities with no drawn relation would all land in dagre's first rank as one tall column;
  // they go in a grid below the connected graph instead.
  const connected = new Set(relations.flatMap((r) => [r.from, r.to]));
  const sizes = new Map(entities.map((entity) => [entity.id, nodeSize(entity)]));

  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: "LR", nodesep: 18, ranksep: 90, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const entity of entities) if (connected.has(entity.id)) g.setNode(entity.id, sizes.get(entity.id)!);
  relations.forEach((relation, index) => g.setEdge(relation.from, relation.to, {}, String(index)));
  dagre.layout(g);
  const graphSize = g.graph();
  let width = connected.size ? graphSize.width ?? 0 : 0;
  let height = connected.size ? graphSize.height ?? 0 : 0;

  const nodes: LaidOutNode[] = [];
  for (const entity of entities) {
    if (!connected.has(entity.id)) continue;
    const node = g.node(entity.id);
    nodes.push({ entity, x: node.x - node.width / 2, y: node.y - node.height / 2, width: node.width, height: node.height });
  }
  const loose = entities.filter((entity) => !connected.has(entity.id)).sort((a, b) => a.name.localeCompare(b.name));
  if (loose.length) {
    const gridWidth = Math.max(width, 900);
    let x = 16;
    let y = height + (height ? 24 : 16);
    let rowHeight = 0;
    for (const entity of loose) {
      const size = sizes.get(entity.id)!;
      if (x + size.width > gridWidth - 16 && x > 16) {
        x = 16;
        y += rowHeight + 14;
        rowHeight = 0;
      }
      nodes.push({ entity, x, y, ...size });
      x += size.width + 14;
      rowHeight = Math.max(rowHeight, size.height);
      width = Math.max(width, x + 2);
    }
    height = y + rowHeight + 16;
  }
  const edges = relations.map((relation, index) => ({
    relation,
    points: (g.edge({ v: relation.from, w: relation.to, name: String(index) }).points ?? []) as { x: number; y: number }[],
  }));
  return { nodes, edges, width, height, looseFrom: loose.length ? nodes[nodes.length - loose.length].y - 10 : undefined };
}

function nodeSize(entity: GraphEntity): { width: number; height: number } {
  // Wide enough for the name (bold 13 px) and the stats line ("database · 6.0/min · 0.84% err").
  const statsChars = (entity.kind === "service" ? 0 : entity.kind.length + 3) + 22;
  const width = Math.max(120, Math.min(280, 26 + Math.max(Math.min(entity.name.length, 30) * 8, statsChars * 6.4)));
  return { width, height: nodeHeight(entity.rate) };
}

/** Green through amber to red as the error ratio goes from 0 to 10 % and beyond; the square
 * root makes the first few percent, where most trouble starts, already visibly amber. */
export function errorColor(errorRate: number): string {
  const t = Math.sqrt(Math.min(1, Math.max(0, errorRate / 0.1)));
  const hue = 130 - 130 * t;
  return `hsl(${hue.toFixed(0)} 60% 45%)`;
}
