// A job's state, folded from its events and kept in sessionStorage, so a reload or a dropped
// connection picks up from the last event seen.

const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const LOG_TAIL = 200;
const STREAM_ID = /^\d+-\d+$/; // a Redis stream id: the job stream's resumable position

const storageKey = (id) => `spinbot.job.${id}`;

export class JobModel {
  constructor(id, { graph = null, estimate = null } = {}) {
    this.id = id;
    this.status = "queued";
    this.progress = 0;
    this.reached = 0; // the furthest the bar went while the job ran: a stop never draws it shorter
    this.graph = graph;
    this.estimate = estimate;
    this.nodes = {};
    this.logs = [];
    this.artifacts = [];
    this.error = null;
    this.lastEventId = null;
    this.startedAt = Date.now();
    this.finishedAt = null;
    for (const n of graph?.nodes || []) this.seedNode(n);
  }

  static load(id) {
    const raw = sessionStorage.getItem(storageKey(id));
    if (!raw) return null;
    try {
      return Object.assign(new JobModel(id), JSON.parse(raw));
    } catch {
      return null;
    }
  }

  save() {
    try {
      sessionStorage.setItem(storageKey(this.id), JSON.stringify(this));
    } catch { /* storage full: the view still works, a reload replays from the server */ }
  }

  get terminal() {
    return TERMINAL.has(this.status);
  }

  seedNode(n) {
    this.nodes[n.id] ||= { status: n.status || "pending", progress: n.status === "completed" ? 1 : 0, message: "", attempts: n.attempts || 0, error: n.error || null };
  }

  setGraph(graph) {
    this.graph = graph;
    for (const n of graph?.nodes || []) this.seedNode(n);
  }

  /** Fold one event into the state; returns false for events that do not concern jobs. */
  apply(type, data, eventId) {
    if (!data || typeof data !== "object") return false;
    const handler = this[`on_${type}`];
    if (!handler) return false;
    handler.call(this, data);
    if (eventId && STREAM_ID.test(eventId)) this.lastEventId = eventId;
    return true;
  }

  /** Whether the job stopped before finishing (failed or cancelled). */
  get stopped() {
    return this.status === "failed" || this.status === "cancelled";
  }

  /** Take the server's progress; once stopped, its figure (every finished step, cancelled ones too) is not work. */
  setProgress(p) {
    this.progress = p;
    if (!this.stopped) this.reached = Math.max(this.reached || 0, p);
  }

  on_job(d) {
    if (d.status) this.status = d.status;
    if (typeof d.progress === "number") this.setProgress(d.progress);
    if (d.error) this.error = d.error;
    if (d.graph?.nodes) this.setGraph(d.graph);
    if (this.terminal && !this.finishedAt) this.finishedAt = Date.now();
    if (this.status === "completed") this.progress = 1;
    if (this.status === "cancelled") {
      for (const n of Object.values(this.nodes)) if (n.status === "pending" || n.status === "running") n.status = "cancelled";
    }
  }

  /**
   * The share of the work actually done. A stopped (failed or cancelled) job counts its completed steps
   * only: the server's progress counts every finished step, so it says 100 % for a job that failed.
   */
  workDone() {
    if (this.status !== "failed" && this.status !== "cancelled") return this.progress;
    const nodes = this.graph?.nodes || [];
    const weight = (n) => n.progressWeight || 1;
    const total = nodes.reduce((sum, n) => sum + weight(n), 0);
    if (!total) return 0;
    const done = nodes.reduce((sum, n) => sum + (this.nodes[n.id]?.status === "completed" ? weight(n) : 0), 0);
    return done / total;
  }

  /**
   * A stopped job's steps by outcome, in graph order: {completed, stopped: [{name, status, progress}], notRun}.
   * `stopped` are the steps cancelled or failed after they started; `notRun` never started.
   */
  outcome() {
    const out = { completed: [], stopped: [], notRun: [] };
    for (const n of this.graph?.nodes || []) {
      const st = this.nodes[n.id] || { status: "pending", progress: 0 };
      const name = n.name || n.id;
      if (st.status === "completed") out.completed.push(name);
      else if (st.progress > 0 || st.status === "failed") out.stopped.push({ name, status: st.status, progress: st.progress || 0 });
      else out.notRun.push(name);
    }
    return out;
  }

  on_node(d) {
    const n = (this.nodes[d.node] ||= { status: "pending", progress: 0, message: "", attempts: 0 });
    n.status = d.status || n.status;
    n.attempts = d.attempts ?? n.attempts;
    n.service = d.service || n.service;
    n.plane = d.plane || n.plane;
    n.error = d.error || (d.status === "running" ? null : n.error);
    n.reused = d.reused || (d.status === "running" ? null : n.reused);
    if (d.status === "running") n.checks = null;
    if (Array.isArray(d.output?.checks)) n.checks = d.output.checks;
    if (d.status === "completed") n.progress = 1;
    if (this.status === "queued") this.status = "running";
    if (d.error) this.log(d.node, `failed: ${d.error.message || d.error.code || JSON.stringify(d.error)}`);
    else if (d.reused) this.log(d.node, "completed: reused, not run again");
    else if (d.status) this.log(d.node, `${d.status}${d.attempts > 1 ? ` (attempt ${d.attempts})` : ""}${d.plane ? ` on the ${d.plane} plane` : ""}`);
  }

  on_progress(d) {
    const n = (this.nodes[d.node] ||= { status: "running", progress: 0, message: "", attempts: 0 });
    if (typeof d.progress === "number") n.progress = d.progress;
    if (d.message && d.message !== n.message) this.log(d.node, d.message);
    if (d.message) n.message = d.message;
    if (typeof d.job_progress === "number") this.setProgress(d.job_progress);
    if (n.status === "pending") n.status = "running";
    if (this.status === "queued") this.status = "running";
  }

  on_artifact(d) {
    if (!d.key || this.artifacts.some((a) => a.key === d.key)) return;
    this.artifacts.push(d);
  }

  on_log(d) {
    this.log(d.node, d.message);
  }

  log(node, message) {
    if (!message) return;
    this.logs.push({ node: node || "", message: String(message), at: Date.now() });
    if (this.logs.length > LOG_TAIL) this.logs.splice(0, this.logs.length - LOG_TAIL);
  }

  /** Estimated seconds of the steps not done yet (the evaluator's learned per-step estimates); NaN without them. */
  plannedLeft() {
    const byNode = this.estimate?.by_node;
    if (!byNode) return NaN;
    let left = 0;
    for (const [id, seconds] of Object.entries(byNode)) {
      const n = this.nodes[id];
      if (n?.status === "completed" || n?.status === "skipped") continue;
      left += seconds * (1 - (n?.progress || 0));
    }
    return left;
  }

  /** Seconds left: the steps' estimates, averaged with the measured rate once there is progress. */
  eta() {
    if (this.terminal) return 0;
    const elapsed = (Date.now() - this.startedAt) / 1000;
    const left = this.plannedLeft();
    const measured = this.progress > 0.02 ? (elapsed * (1 - this.progress)) / this.progress : NaN;
    if (Number.isFinite(left) && Number.isFinite(measured)) return (left + measured) / 2;
    if (Number.isFinite(measured)) return measured;
    if (Number.isFinite(left)) return left;
    const planned = this.estimate?.duration_s;
    return Number.isFinite(planned) ? Math.max(0, planned - elapsed) : NaN;
  }
}

/** A JobModel from GET /api/jobs/{id}: graph, status, progress, artifacts and recent events. */
export function modelFromSnapshot(job) {
  const model = new JobModel(job.id, { graph: job.graph, estimate: job.estimate || job.evaluation?.estimate });
  model.status = job.status || model.status;
  model.progress = job.progress ?? model.progress;
  if (!model.stopped) model.reached = model.progress;
  model.error = job.error || null;
  model.findings = job.checks || [];
  const created = Date.parse(job.created_at || job.created || "");
  if (Number.isFinite(created)) model.startedAt = created;
  const updated = Date.parse(job.finished_at || job.updated_at || job.updated || "");
  if (model.terminal) model.finishedAt = Number.isFinite(updated) ? updated : Date.now();
  for (const a of job.artifacts || []) model.on_artifact({ ...a, contentType: a.contentType || a.content_type, node: a.node || a.node_id });
  for (const ev of job.events || []) {
    const [id, type, data] = Array.isArray(ev) ? ev : [ev.id, ev.type || ev.event, ev.data];
    model.apply(type, data, id);
  }
  return model;
}
