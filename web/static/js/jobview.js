// A job's live panel: DAG, weighted bar with ETA, a bar per step, log tail, artifacts and Cancel.
import { artifactUrl, authHeaders, getJSON, postJSON } from "./api.js";
import { renderDag, updateDag } from "./dag.js";
import { clear, formatBytes, formatDuration, h, kindText, percent } from "./dom.js";
import { ResumableStream } from "./sse.js";

/** One measurement of a step's output (output.checks): "duration_s 2.7 s", a verdict, what it means. */
function checkView(c) {
  const verdict = c.not_checked ? "not checked" : c.ok === true ? "ok" : c.ok === false ? "miss" : "measured";
  const value = c.value === null || c.value === undefined ? "" : ` ${c.value}${c.unit ? ` ${c.unit}` : ""}`;
  return h("li", { class: `check check-${verdict.replace(" ", "-")}`, dataset: { check: c.name } },
    h("span", { class: "check-name" }, `${c.name}${value}`),
    h("span", { class: "badge" }, verdict),
    h("span", { class: "muted" }, ` ${c.not_checked || c.detail || ""}`));
}

/** An artifact's label, as web/views.py artifact_label says it: the step's name, and what it is when the
 * step's name does not say it ("Speak the text: audio", "Draw the image"); never changes after a reload. */
export function artifactLabel(a, step) {
  const name = step?.name || a.node || "";
  const major = (a.contentType || a.content_type || "").split("/")[0].toLowerCase();
  const kind = ["image", "audio", "video"].includes(major) ? major : "file";
  if (!name) return kind;
  return name.toLowerCase().split(/\W+/).includes(kind) ? name : `${name}: ${kind}`;
}

/** An artifact's card; `ready` false shows it without fetching (its producer is still finishing). */
function artifactView(a, ready, step) {
  const url = artifactUrl(a);
  const type = a.contentType || a.content_type || "";
  const label = artifactLabel(a, step);
  let media = null;
  if (!ready) media = h("p", { class: "muted" }, "finishing…");
  else if (type.startsWith("audio/")) media = h("audio", { controls: true, preload: "metadata", src: url, "aria-label": label });
  else if (type.startsWith("video/")) media = h("video", { controls: true, preload: "metadata", src: url, playsInline: true, "aria-label": label });
  else if (type.startsWith("image/")) media = h("img", { src: url, alt: label, loading: "lazy" });
  return h("figure", { class: "artifact", dataset: { key: a.key, contentType: type } },
    media,
    h("figcaption", {},
      h("span", { class: "artifact-name" }, label),
      h("span", { class: "muted" }, ` ${kindText(type)}, ${formatBytes(a.size)} `),
      ready ? h("a", { href: url, download: (a.key || "").split("/").pop() || "artifact" }, "Download") : null));
}

/** "50 % done · cancelled after 12 s · finished: A · cancelled at 65 %: B · not started: C". */
function stoppedText(m, done, elapsed) {
  const o = m.outcome();
  const parts = [`${percent(done)} done`, `${m.status} after ${formatDuration(elapsed)}`];
  if (o.completed.length) parts.push(`finished: ${o.completed.join(", ")}`);
  for (const s of o.stopped) parts.push(`${s.status}${s.progress > 0 ? ` at ${percent(s.progress)}` : ""}: ${s.name}`);
  if (o.notRun.length) parts.push(`not started: ${o.notRun.join(", ")}`);
  return parts.join(" · ");
}

export class JobPanel {
  constructor(model, { compact = false, access = "" } = {}) {
    this.model = model;
    this.query = access ? `?${access}` : ""; // a signed job link's exp&sig: reads without a key
    this.stream = null;
    this.pending = false;
    this.shownArtifacts = new Map(); // key -> {el, ready}
    this.el = h("section", { class: `job-panel${compact ? " compact" : ""}`, "aria-label": `Job ${model.id}`, dataset: { job: model.id } });
    this.build();
    this.render();
  }

  build() {
    const m = this.model;
    this.statusEl = h("span", { class: "badge" });
    this.connEl = h("span", { class: "conn muted", "aria-live": "polite" });
    this.cancelBtn = h("button", { type: "button", class: "danger", onclick: () => this.cancel() }, "Cancel");
    this.barFill = h("div", { class: "bar-fill" });
    this.barStopped = h("div", { class: "bar-stopped", title: "started, then stopped: not done" });
    this.bar = h("div", { class: "bar job-bar", role: "progressbar", "aria-label": "Job progress", "aria-valuemin": "0", "aria-valuemax": "100" }, this.barFill, this.barStopped);
    this.barText = h("div", { class: "bar-text", "aria-live": "polite" });
    this.dagWrap = h("div", { class: "dag-wrap" });
    this.nodeList = h("ol", { class: "node-list" });
    this.logPre = h("pre", { class: "log-tail", tabIndex: 0, "aria-label": "Log tail" });
    this.errorEl = h("p", { class: "error", hidden: true });
    this.findingsEl = h("ul", { class: "findings", "aria-label": "Results against the request", hidden: true });
    this.artifactsEl = h("div", { class: "artifacts" });
    this.el.append(
      h("header", { class: "job-head" },
        h("a", { href: `/jobs/${encodeURIComponent(m.id)}`, class: "job-link", title: m.id }, `Job ${m.id.slice(0, 12)}`),
        this.statusEl, this.connEl, this.cancelBtn),
      this.bar, this.barText, this.errorEl, this.findingsEl, this.dagWrap,
      h("details", { class: "nodes", open: true }, h("summary", {}, "Steps"), this.nodeList),
      h("details", { class: "log", open: true }, h("summary", {}, "Log"), this.logPre),
      this.artifactsEl);
  }

  setGraph(graph) {
    this.model.setGraph(graph);
    this.dagSvg = null;
    this.render();
  }

  /** Feed one SSE event (from the chat stream or the job stream). */
  apply(ev) {
    if (this.model.apply(ev.event, ev.data, ev.id)) {
      this.model.save();
      this.schedule();
      if (this.model.terminal && !this.ended) {
        this.ended = true;
        this.fetchTimes();
        this.onEnd?.(this.model);
      }
    }
  }

  /** The server's start and finish times, once: events may arrive in a burst, so local clocks can mislead. */
  async fetchTimes() {
    try {
      const job = await getJSON(`/api/jobs/${encodeURIComponent(this.model.id)}${this.query}`);
      const started = Date.parse(job.created_at || job.created || "");
      this.model.findings = job.checks || [];
      const finished = Date.parse(job.finished || job.finished_at || job.updated || "");
      if (Number.isFinite(started) && Number.isFinite(finished) && finished >= started) {
        Object.assign(this.model, { startedAt: started, finishedAt: finished });
        this.model.save();
        this.schedule();
      }
    } catch { /* the local times stay */ }
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  /** Follow the job's own event stream from the last event seen (resumes after drops and reloads). */
  follow() {
    if (this.stream || this.model.terminal) return;
    const m = this.model;
    this.stream = new ResumableStream(`/api/jobs/${encodeURIComponent(m.id)}/events${this.query}`, {
      headers: authHeaders(),
      lastEventId: m.lastEventId,
      onEvent: (ev) => this.apply(ev),
      isDone: () => m.terminal,
      onState: (state, err) => {
        this.connEl.textContent = state === "reconnecting" ? "reconnecting…" : state === "failed" ? `stream failed: ${err.message}` : "";
      },
    }).start();
  }

  stop() {
    this.stream?.stop();
    this.stream = null;
  }

  async cancel() {
    this.cancelBtn.disabled = true;
    try {
      await postJSON(`/api/jobs/${encodeURIComponent(this.model.id)}/cancel`);
      this.model.log("", "cancel requested");
    } catch (err) {
      this.model.log("", `cancel failed: ${err.message}`);
      this.cancelBtn.disabled = false;
    }
    this.render();
  }

  render() {
    const m = this.model;
    this.el.dataset.status = m.status;
    this.statusEl.className = `badge status-${m.status}`;
    this.statusEl.textContent = m.status;
    this.cancelBtn.hidden = m.terminal;
    const done = m.workDone();
    const pct = Math.round(done * 100);
    this.barFill.style.width = `${pct}%`;
    // Stopped: the bar keeps the length it reached; the part that was under way and not finished is marked,
    // so a cancel never looks like the work going backwards.
    const stoppedPart = m.stopped ? Math.max(0, Math.round((m.reached || 0) * 100) - pct) : 0;
    this.barStopped.style.width = `${stoppedPart}%`;
    this.bar.setAttribute("aria-valuenow", String(pct));
    const elapsed = ((m.finishedAt || Date.now()) - m.startedAt) / 1000;
    this.barText.textContent = m.stopped ? stoppedText(m, done, elapsed)
      : m.terminal ? `${percent(done)} · ${m.status} after ${formatDuration(elapsed)}`
        : `${percent(m.progress)} · ETA ${formatDuration(m.eta())}`;
    this.errorEl.hidden = !m.error;
    if (m.error) this.errorEl.textContent = m.error.message || JSON.stringify(m.error);
    this.renderFindings();
    this.renderGraph();
    this.renderNodes();
    this.logPre.textContent = m.logs.slice(-40).map((l) => `${l.node ? `[${l.node}] ` : ""}${l.message}`).join("\n");
    this.scrollLog();
    this.renderArtifacts();
  }

  /** The log shows its last line; a panel not yet on the page (a reload builds it first) scrolls once it is. */
  scrollLog() {
    if (this.el.isConnected) this.logPre.scrollTop = this.logPre.scrollHeight;
    else requestAnimationFrame(() => { this.logPre.scrollTop = this.logPre.scrollHeight; });
  }

  renderGraph() {
    const m = this.model;
    if (!m.graph?.nodes?.length) return;
    if (!this.dagSvg) {
      this.dagSvg = renderDag(m.graph);
      clear(this.dagWrap).append(this.dagSvg);
    }
    updateDag(this.dagSvg, m.nodes);
  }

  renderNodes() {
    const m = this.model;
    const nodes = m.graph?.nodes || Object.keys(m.nodes).map((id) => ({ id, service: m.nodes[id].service || "", plane: m.nodes[id].plane }));
    const items = nodes.map((n) => {
      const st = m.nodes[n.id] || { status: "pending", progress: 0 };
      const done = st.status === "completed" ? 1 : st.progress || 0;
      const checks = st.checks || (st.status === "completed" || !m.nodes[n.id] ? n.output?.checks : null) || [];
      return h("li", { class: `node-row status-${st.status}`, dataset: { node: n.id } },
        h("div", { class: "node-row-head" },
          h("span", { class: "node-name" }, n.name || n.id),
          h("span", { class: "muted" }, ` ${n.service} · ${n.plane || st.plane || ""}`),
          h("span", { class: `badge status-${st.status}`, title: st.reused ? `outputs of ${st.reused.node} in job ${st.reused.job}` : "" },
            st.reused ? "reused" : st.attempts > 1 ? `${st.status} (try ${st.attempts})` : st.status)),
        h("div", { class: "bar node-bar", role: "progressbar", "aria-label": `${n.id} progress`, "aria-valuenow": String(Math.round(done * 100)), "aria-valuemin": "0", "aria-valuemax": "100" },
          h("div", { class: "bar-fill", style: `width:${Math.round(done * 100)}%` })),
        (st.message || st.error) && h("div", { class: "node-msg muted" }, st.error?.message || st.message),
        checks.length ? h("ul", { class: "checks", "aria-label": `${n.id} checks` }, ...checks.map(checkView)) : null);
    });
    this.nodeList.replaceChildren(...items);
  }

  /** Once the job completed: "Done" when the checked results match the request, else each difference. */
  renderFindings() {
    const found = this.model.status === "completed" ? this.model.findings || [] : [];
    const misses = found.filter((f) => f.kind === "miss");
    this.findingsEl.hidden = !found.length;
    this.findingsEl.replaceChildren(
      h("li", { class: misses.length ? "finding-head miss" : "finding-head" },
        misses.length ? "Done, but not as asked:" : "Done: the checked results match the request."),
      ...found.map((f) => h("li", { class: `finding finding-${f.kind}` },
        h("span", { class: "badge" }, f.kind.replace("_", " ")), ` ${f.message}`)));
  }

  renderArtifacts() {
    // An artifact is fetched once the step that made it has finished (it is recorded by then), and
    // cards are only ever added or upgraded, so a playing <audio> is never torn down by a re-render.
    // Cards keep the graph's step order (events and a reload's list may come in another order).
    const m = this.model;
    const steps = m.graph?.nodes || [];
    const place = (a) => { const i = steps.findIndex((n) => n.id === a.node); return i < 0 ? steps.length : i; };
    const ordered = [...m.artifacts].sort((x, y) => place(x) - place(y));
    for (const [i, a] of ordered.entries()) {
      const ready = m.terminal || m.nodes[a.node]?.status === "completed" || !a.node;
      const shown = this.shownArtifacts.get(a.key);
      if (shown && (shown.ready || !ready)) continue;
      const el = artifactView(a, ready, steps.find((n) => n.id === a.node));
      if (shown) shown.el.replaceWith(el);
      else this.artifactsEl.insertBefore(el, ordered.slice(i + 1).map((b) => this.shownArtifacts.get(b.key)?.el).find(Boolean) || null);
      this.shownArtifacts.set(a.key, { el, ready });
    }
  }

}
