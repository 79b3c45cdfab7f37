// The plan as a layered DAG in SVG: layers by longest path from the sources, order within a
// layer by the barycentre of the predecessors, edges labelled with the outputs that flow.
import { s } from "./dom.js";

const NODE_W = 176;
const NODE_H = 58;
const GAP_X = 28;
const GAP_Y = 70;
const PAD = 16;
let drawings = 0; // each drawing gets its own marker id

function refsOf(value, found = []) {
  for (const item of Array.isArray(value) ? value : [value]) {
    if (item && typeof item === "object" && typeof item.$node === "string") found.push(item);
  }
  return found;
}

/** Edges {from, to, labels[]}: explicit graph edges plus data references in params, merged. */
export function dataEdges(graph) {
  const byPair = new Map();
  const ids = new Set(graph.nodes.map((n) => n.id));
  const edge = (from, to) => {
    const key = `${from}\u0000${to}`;
    if (!byPair.has(key)) byPair.set(key, { from, to, labels: [] });
    return byPair.get(key);
  };
  for (const e of graph.edges || []) if (ids.has(e.from) && ids.has(e.to)) edge(e.from, e.to);
  for (const node of graph.nodes) {
    for (const value of Object.values(node.params || {})) {
      for (const ref of refsOf(value)) {
        if (!ids.has(ref.$node)) continue;
        const e = edge(ref.$node, node.id);
        if (!e.labels.includes(ref.output)) e.labels.push(ref.output);
      }
    }
  }
  return [...byPair.values()];
}

/** Positions for every node: {id: {x, y, layer}} plus the drawing's width and height. */
export function layout(graph) {
  const edges = dataEdges(graph);
  const preds = new Map(graph.nodes.map((n) => [n.id, []]));
  for (const e of edges) preds.get(e.to).push(e.from);
  const layerOf = new Map();
  const visiting = new Set();
  const depth = (id) => {
    if (layerOf.has(id)) return layerOf.get(id);
    if (visiting.has(id)) return 0; // a cycle: the evaluator reports it; draw it anyway
    visiting.add(id);
    const d = Math.max(-1, ...preds.get(id).map(depth)) + 1;
    visiting.delete(id);
    layerOf.set(id, d);
    return d;
  };
  graph.nodes.forEach((n) => depth(n.id));
  const layers = [];
  for (const n of graph.nodes) (layers[layerOf.get(n.id)] ||= []).push(n.id);
  const index = new Map();
  layers.forEach((ids) => ids.forEach((id, i) => index.set(id, i)));
  for (let pass = 0; pass < 2; pass += 1) {
    for (const ids of layers.slice(1)) {
      const centre = (id) => {
        const p = preds.get(id);
        return p.length ? p.reduce((sum, q) => sum + index.get(q), 0) / p.length : index.get(id);
      };
      ids.sort((a, b) => centre(a) - centre(b));
      ids.forEach((id, i) => index.set(id, i));
    }
  }
  const widest = Math.max(...layers.map((l) => l.length));
  const width = PAD * 2 + widest * NODE_W + (widest - 1) * GAP_X;
  const height = PAD * 2 + layers.length * NODE_H + (layers.length - 1) * GAP_Y;
  const pos = {};
  layers.forEach((ids, layer) => {
    const rowWidth = ids.length * NODE_W + (ids.length - 1) * GAP_X;
    const left = (width - rowWidth) / 2;
    ids.forEach((id, i) => {
      pos[id] = { x: left + i * (NODE_W + GAP_X), y: PAD + layer * (NODE_H + GAP_Y), layer };
    });
  });
  return { pos, edges, width, height };
}

function clip(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Spread each node's edge ends along its bottom (out) and top (in) sides, ordered by the other end's x. */
function ports(edges, pos) {
  const outs = new Map();
  const ins = new Map();
  for (const e of edges) {
    (outs.get(e.from) || outs.set(e.from, []).get(e.from)).push(e);
    (ins.get(e.to) || ins.set(e.to, []).get(e.to)).push(e);
  }
  const spread = (list, key, other) => {
    list.sort((a, b) => pos[a[other]].x - pos[b[other]].x);
    list.forEach((e, i) => { e[key] = (NODE_W * (i + 1)) / (list.length + 1); });
  };
  outs.forEach((list) => spread(list, "outX", "to"));
  ins.forEach((list) => spread(list, "inX", "from"));
}

function bezier(p0, p1, p2, p3, t) {
  const u = 1 - t;
  return u * u * u * p0 + 3 * u * u * t * p1 + 3 * u * t * t * p2 + t * t * t * p3;
}

function drawEdge(e, pos, marker) {
  const a = pos[e.from];
  const b = pos[e.to];
  const x1 = a.x + e.outX;
  const y1 = a.y + NODE_H;
  const x2 = b.x + e.inX;
  const y2 = b.y - 6;
  // Bend within the gaps next to each end, so edges that skip layers stay clear of the nodes between.
  const bend = Math.min(GAP_Y, (y2 - y1) / 2);
  const c1 = y1 + bend;
  const c2 = y2 - bend;
  // The label sits in the gap just above the target, where no node can hide it.
  const t = b.layer - a.layer > 1 ? 0.85 : 0.5;
  const lx = bezier(x1, x1, x2, x2, t);
  const ly = bezier(y1, c1, c2, y2, t) + 4;
  const label = e.labels.join(", ");
  return s("g", { class: "dag-edge", dataset: { from: e.from, to: e.to } },
    s("path", { d: `M${x1},${y1} C${x1},${c1} ${x2},${c2} ${x2},${y2}`, "marker-end": `url(#${marker})` }),
    label && s("text", { x: lx, y: ly, "text-anchor": "middle", class: "dag-edge-label" }, clip(label, 28)));
}

function drawNode(node, p) {
  const plane = node.plane || "control";
  return s("g", {
    class: `dag-node status-${node.status || "pending"} plane-${plane}`,
    transform: `translate(${p.x},${p.y})`,
    dataset: { node: node.id },
  },
  s("title", {}, `${node.id} · ${node.service} · ${plane} plane · ${node.status || "pending"}`),
  s("rect", { class: "dag-box", width: NODE_W, height: NODE_H, rx: 8 }),
  s("rect", { class: "dag-plane", width: 6, height: NODE_H, rx: 3 }),
  s("text", { class: "dag-title", x: 14, y: 21 }, clip(node.name || node.id, 20)),
  s("text", { class: "dag-service", x: 14, y: 39 }, clip(node.service, 24)),
  s("text", { class: "dag-plane-label", x: NODE_W - 8, y: 15, "text-anchor": "end" }, plane === "gpu" ? "GPU" : "CTRL"),
  s("rect", { class: "dag-progress-track", x: 14, y: NODE_H - 10, width: NODE_W - 28, height: 4, rx: 2 }),
  s("rect", { class: "dag-progress", x: 14, y: NODE_H - 10, width: 0, height: 4, rx: 2 }));
}

/** An SVG element drawing the graph; update it in place with updateDag. */
export function renderDag(graph) {
  const { pos, edges, width, height } = layout(graph);
  const marker = `dag-arrow-${(drawings += 1)}`;
  ports(edges, pos);
  const svg = s("svg", {
    class: "dag",
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": `Plan graph with ${graph.nodes.length} steps`,
  },
  s("defs", {}, s("marker", { id: marker, viewBox: "0 0 10 10", refX: 8, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    s("path", { d: "M0,0 L10,5 L0,10 z", class: "dag-arrowhead" }))),
  edges.map((e) => drawEdge(e, pos, marker)),
  graph.nodes.map((n) => drawNode(n, pos[n.id])));
  return svg;
}

/** Recolour nodes and fill their progress bars: states is {nodeId: {status, progress}}. */
export function updateDag(svg, states) {
  for (const g of svg.querySelectorAll(".dag-node")) {
    const st = states[g.dataset.node];
    if (!st) continue;
    const status = st.status || "pending";
    g.setAttribute("class", g.getAttribute("class").replace(/status-\S+/, `status-${status}`));
    const done = status === "completed" ? 1 : st.progress || 0;
    g.querySelector(".dag-progress").setAttribute("width", String((NODE_W - 28) * done));
    g.querySelector("title").textContent = g.querySelector("title").textContent.replace(/[^·]+$/, ` ${status}`);
  }
}
