// The plan card: the DAG the planner produced, the evaluator's findings and estimate, and
// (when the user asked to review first) Run and "change it".
import { getJSON } from "./api.js";
import { renderDag } from "./dag.js";
import { formatDuration, h } from "./dom.js";

function findingView(f) {
  if (typeof f === "string") return h("li", { class: "finding" }, f);
  const level = f.severity || f.level || "info";
  const where = [f.node, f.param || f.path].filter(Boolean).join(" · ");
  return h("li", { class: `finding finding-${level}` },
    h("span", { class: `badge sev-${level}` }, level),
    " ", f.message || f.code || JSON.stringify(f),
    where && h("span", { class: "muted" }, ` (${where})`),
    f.hint && h("div", { class: "muted" }, f.hint));
}

/** A param's value as a person reads it: text as is, a wire as where it comes from. */
function paramText(value) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    if (typeof value.$node === "string") return `from ${value.$node} (${value.output})`;
    if (typeof value.$attachment === "string") return `the attached file ${value.$attachment}`;
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return value.map(paramText).join(", ");
  return String(value);
}

let services = null; // the capabilities' service declarations, fetched once a page: for the params' defaults

/** The defaults of the params a step leaves out (a speed it will use is shown too), as [name, value] pairs. */
async function defaultsOf(node) {
  services ||= getJSON("/api/capabilities").then((m) => m.services || {}).catch(() => ({}));
  const props = (await services)[node.service]?.params?.properties || {};
  return Object.entries(props).filter(([k, p]) => !(k in (node.params || {})) && p.default !== undefined && p.default !== null && p.default !== "")
    .map(([k, p]) => [k, p.default]);
}

/** Each step with the params it will run with (the words to speak, the voice, the speed...). */
function stepsView(graph, open) {
  return h("details", { class: "plan-steps", open },
    h("summary", {}, "What each step will do"),
    h("ol", { class: "step-params" }, graph.nodes.map((n) => {
      const list = h("dl", { class: "params" }, Object.entries(n.params || {}).map(([k, v]) => [h("dt", {}, k), h("dd", { dataset: { param: k } }, paramText(v))]));
      defaultsOf(n).then((pairs) => list.append(...pairs.flatMap(([k, v]) => [
        h("dt", {}, k), h("dd", { dataset: { param: k } }, paramText(v), h("span", { class: "muted" }, " (default)"))])));
      return h("li", { dataset: { node: n.id } },
        h("div", {}, h("span", { class: "node-name" }, n.name || n.id), h("span", { class: "muted" }, ` ${n.service} · ${n.plane === "gpu" ? "GPU" : "control"} plane`)),
        list);
    })));
}

function estimateText(estimate) {
  if (!estimate) return "";
  const parts = [];
  const duration = estimate.duration_s ?? estimate.seconds;
  if (Number.isFinite(duration)) {
    // The learned estimate's ~80 % range, when it is wider than a second: "about 40 s (30 s–1 min)".
    const [lo, hi] = [estimate.low_s, estimate.high_s];
    const range = Number.isFinite(lo) && Number.isFinite(hi) && hi - lo >= 1 ? ` (${formatDuration(lo)}–${formatDuration(hi)})` : "";
    parts.push(`about ${formatDuration(duration)}${range}`);
  }
  if (estimate.reused?.length) parts.push(`reused: ${estimate.reused.join(", ")}`);
  if (estimate.gpu_s > 0) parts.push(`${formatDuration(estimate.gpu_s)} on the GPU`);
  const memory = estimate.peak_memory_mb ?? estimate.memory_mb;
  if (memory > 0) parts.push(`peak ${memory} MB`);
  return parts.join(" · ");
}

/** A plan card element; onRun() runs the graph, onChange() puts the user back in the composer. */
export function planCard({ graph, evaluation }, { review = false, onRun, onChange } = {}) {
  const findings = evaluation?.findings || [];
  const ok = evaluation?.ok !== false;
  const est = estimateText(evaluation?.estimate);
  const dagWrap = h("div", { class: "dag-wrap" }, renderDag(graph));
  const card = h("section", { class: `plan-card${ok ? "" : " plan-bad"}`, "aria-label": "Plan" },
    h("header", { class: "plan-head" },
      h("strong", {}, graph.metadata?.pipeline ? `Plan (pipeline ${graph.metadata.pipeline})` : "Plan"),
      h("span", { class: `badge ${ok ? "status-completed" : "status-failed"}` }, ok ? "checked" : "has errors"),
      h("span", { class: "muted" }, ` ${graph.nodes.length} step${graph.nodes.length === 1 ? "" : "s"}${est ? ` · ${est}` : ""}`)),
    dagWrap,
    stepsView(graph, review),
    findings.length ? h("ul", { class: "findings", "aria-label": "Evaluator findings" }, findings.map(findingView)) : null);
  if (review) {
    const run = h("button", { type: "button", class: "primary", disabled: !ok }, "Run");
    const change = h("button", { type: "button" }, "Change it");
    run.addEventListener("click", async () => {
      run.disabled = true;
      change.disabled = true;
      try {
        await onRun?.();
        actions.remove();
      } catch (err) {
        run.disabled = false;
        change.disabled = false;
        actions.append(h("p", { class: "error" }, `Could not run: ${err.message}`));
      }
    });
    change.addEventListener("click", () => onChange?.());
    const actions = h("div", { class: "plan-actions" }, run, change);
    card.append(actions);
  }
  card.dagWrap = dagWrap;
  return card;
}
