// The plan as a layered DAG in SVG: layers by longest path from the sources, order within a
// layer by the barycentre of the predecessors, edges labelled with the outputs that flow.
import { s } from "./dom.js";

const NODE_W = 176;
const NODE_H = 58;
const GAP_X = 28;
const GAP_Y = 70;
const PAD = 16;
const WAY_W = 20; // the lane a layer-skipping edge takes through a layer
// The plane badge sits at the bottom right, beside the progress bar: the title and service lines keep the width.
const TRACK_W = NODE_W - 14 - 44;
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

/**
 * Positions for every node and waypoint: {id: {x, y, layer, w}}, plus the drawing's size. An edge
 * that skips layers gets a waypoint in each layer it crosses, ordered with the nodes, so it runs
 * in a lane of its own instead of under the nodes in between.
 */
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
  const widthOf = new Map();
  const above = new Map(graph.nodes.map((n) => [n.id, []])); // what each item hangs from, for ordering
  for (const n of graph.nodes) {
    (layers[layerOf.get(n.id)] ||= []).push(n.id);
    widthOf.set(n.id, NODE_W);
  }
  for (const e of edges) {
    e.via = [];
    let prev = e.from;
    for (let l = layerOf.get(e.from) + 1; l < layerOf.get(e.to); l += 1) {
      const way = `${e.from}\u0000${e.to}\u0000${l}`;
      (layers[l] ||= []).push(way);
      widthOf.set(way, WAY_W);
      above.set(way, [prev]);
      e.via.push(way);
      prev = way;
    }
    if (layerOf.get(e.to) > layerOf.get(e.from)) above.get(e.to).push(prev);
  }
  const index = new Map();
  layers.forEach((ids) => ids.forEach((id, i) => index.set(id, i)));
  for (let pass = 0; pass < 3; pass += 1) {
    for (const ids of layers.slice(1)) {
      const centre = (id) => {
        const p = above.get(id);
        return p.length ? p.reduce((sum, q) => sum + index.get(q), 0) / p.length : index.get(id);
      };
      ids.sort((a, b) => centre(a) - centre(b));
      ids.forEach((id, i) => index.set(id, i));
    }
  }
  const rowWidth = (ids) => ids.reduce((sum, id) => sum + widthOf.get(id), 0) + (ids.length - 1) * GAP_X;
  const width = PAD * 2 + Math.max(...layers.map(rowWidth));
  const height = PAD * 2 + layers.length * NODE_H + (layers.length - 1) * GAP_Y;
  const pos = {};
  layers.forEach((ids, layer) => {
    let x = (width - rowWidth(ids)) / 2;
    for (const id of ids) {
      pos[id] = { x, y: PAD + layer * (NODE_H + GAP_Y), layer, w: widthOf.get(id) };
      x += widthOf.get(id) + GAP_X;
    }
  });
  return { pos, edges, width, height };
}

/** `text` in at most `max` characters, cut between words with "…" (spinbot/units.py shorten, alike). */
export function clip(text, max) {
  if (text.length <= max) return text;
  const cut = text.slice(0, max - 1);
  const space = cut.lastIndexOf(" ");
  return `${(space > 0 ? cut.slice(0, space) : cut).replace(/[\s,;:.–-]+$/, "")}…`;
}

const TEXT_FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
let measurer = null;

/** The text cut (with …) to fit `width` px in `font` (as drawn: see .dag-title, .dag-service): "WWW…" and "iii" alike. */
function fit(text, width, font) {
  measurer ||= document.createElement("canvas").getContext("2d");
  measurer.font = font;
  if (measurer.measureText(text).width <= width) return text;
  let n = text.length;
  while (n > 1 && measurer.measureText(`${text.slice(0, n)}…`).width > width) n -= 1;
  return `${text.slice(0, n)}…`;
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
  for (const e of edges) {
    e.firstHop = e.via[0] || e.to;
    e.lastHop = e.via.at(-1) || e.from;
  }
  outs.forEach((list) => spread(list, "outX", "firstHop"));
  ins.forEach((list) => spread(list, "inX", "lastHop"));
}

/** A vertical S-curve from (x1, y1) down to (x2, y2). */
function curve(x1, y1, x2, y2) {
  const my = (y1 + y2) / 2;
  return `C${x1},${my} ${x2},${my} ${x2},${y2}`;
}

function drawEdge(e, pos, marker) {
  const a = pos[e.from];
  const b = pos[e.to];
  let x = a.x + e.outX;
  let y = a.y + NODE_H;
  let d = `M${x},${y}`;
  for (const way of e.via) {
    const w = pos[way];
    const wx = w.x + WAY_W / 2;
    d += ` ${curve(x, y, wx, w.y)} L${wx},${w.y + NODE_H}`; // straight down its lane through the layer
    x = wx;
    y = w.y + NODE_H;
  }
  const x2 = b.x + e.inX;
  const y2 = b.y - 6;
  d += ` ${curve(x, y, x2, y2)}`;
  // The label sits in the gap just above the target, where no node can hide it.
  const label = e.labels.join(", ");
  return s("g", { class: "dag-edge", dataset: { from: e.from, to: e.to } },
    s("path", { d, "marker-end": `url(#${marker})` }),
    label && s("text", { x: (x + x2) / 2, y: (y + y2) / 2 + 4, "text-anchor": "middle", class: "dag-edge-label" }, clip(label, 28)));
}

function drawNode(node, p) {
  const plane = node.plane || "control";
  return s("g", {
    class: `dag-node status-${node.status || "pending"} plane-${plane}`,
    transform: `translate(${p.x},${p.y})`,
    dataset: { node: node.id },
  },
  s("title", {}, `${node.name ? `${node.name} (${node.id})` : node.id} · ${node.service} · ${plane} plane · ${node.status || "pending"}`), // the whole name
  s("rect", { class: "dag-box", width: NODE_W, height: NODE_H, rx: 8 }),
  s("rect", { class: "dag-plane", width: 6, height: NODE_H, rx: 3 }),
  s("text", { class: "dag-title", x: 14, y: 21 }, fit(clip(node.name || node.id, 40), NODE_W - 22, `600 13px ${TEXT_FONT}`)),
  s("text", { class: "dag-service", x: 14, y: 39 }, fit(clip(node.service, 40), NODE_W - 22, "11px ui-monospace, monospace")),
  s("text", { class: "dag-plane-label", x: NODE_W - 8, y: NODE_H - 5, "text-anchor": "end" }, plane === "gpu" ? "GPU" : "CTRL"),
  s("rect", { class: "dag-progress-track", x: 14, y: NODE_H - 10, width: TRACK_W, height: 4, rx: 2 }),
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
    // Shrink to fit, but not below readable: narrower screens scroll the drawing sideways instead.
    style: `min-width: ${Math.round(width * 0.72)}px`,
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
    g.querySelector(".dag-progress").setAttribute("width", String(TRACK_W * done));
    g.querySelector("title").textContent = g.querySelector("title").textContent.replace(/[^·]+$/, ` ${status}`);
  }
}
