// The job history page, the job page and the capabilities page.
import { apiKey, authHeaders, getJSON } from "./api.js";
import { clear, formatDuration, h, percent } from "./dom.js";
import { JobModel, modelFromSnapshot } from "./jobmodel.js";
import { JobPanel } from "./jobview.js";
import { renderMarkdown } from "./markdown.js";
import { HttpError, problemOf } from "./sse.js";

function errorBox(err, what) {
  // The server's 404 already says "does not exist"; what it cannot say is that another key may own it.
  const hint = err.status === 401 ? " This server needs an API key: set one in the menu." : err.status === 404 ? " If it was made with another API key, set that key in the menu." : "";
  const said = err.message.replace(/\.$/, "");
  const text = err.status === 404 ? `${said[0].toUpperCase()}${said.slice(1)}.` : `Could not load ${what}: ${said}.`;
  return h("p", { class: "error", role: "alert" }, `${text}${hint}`);
}

/** A goal in the jobs table: clamped to a few lines (a goal may be 20,000 characters); the whole of it on hover. */
function goalCell(goal) {
  const shown = goal.length > 600 ? `${goal.slice(0, 600)}…` : goal;
  return h("span", { class: "clamp", title: goal.length > 2000 ? `${goal.slice(0, 2000)}…` : goal }, shown);
}

function when(value) {
  const t = Date.parse(value || "");
  return Number.isFinite(t) ? new Date(t).toLocaleString() : "";
}

export class JobsPage {
  constructor() {
    this.rows = h("tbody");
    this.more = h("button", { type: "button", hidden: true, onclick: () => this.load() }, "Older jobs");
    this.cursor = null;
    this.el = h("div", { class: "page" },
      h("h1", {}, "Jobs"),
      h("div", { class: "table-wrap" }, h("table", { class: "jobs-table responsive" },
        h("thead", {}, h("tr", {}, ["Job", "Goal", "Status", "Progress", "Created"].map((c) => h("th", { scope: "col" }, c)))),
        this.rows)),
      this.more);
  }

  async mount() {
    await this.load();
  }

  async load() {
    let page;
    const query = this.cursor ? `?${new URLSearchParams(this.cursor)}` : "";
    try {
      page = await getJSON(`/api/jobs${query}`);
    } catch (err) {
      this.el.append(errorBox(err, "the jobs"));
      return;
    }
    const jobs = Array.isArray(page) ? page : page.jobs || page.items || [];
    this.rows.append(...jobs.map((j) => h("tr", { dataset: { job: j.id } },
      h("td", { "data-label": "Job" }, h("a", { href: `/jobs/${encodeURIComponent(j.id)}`, title: j.id, class: "mono" }, j.id.slice(0, 12))),
      h("td", { class: "goal", "data-label": "Goal" }, goalCell(j.goal || j.pipeline || "")),
      h("td", { "data-label": "Status" }, h("span", { class: `badge status-${j.status}` }, j.status)),
      h("td", { "data-label": "Progress" }, percent(j.progress)),
      h("td", { "data-label": "Created" }, when(j.created_at || j.created)))));
    if (!this.rows.children.length) this.rows.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No jobs yet")));
    const next = page.next_cursor || page.next || (page.before ? { before: page.before } : null);
    this.cursor = next ? (typeof next === "string" ? { before: next } : next) : null;
    this.more.hidden = !this.cursor || !jobs.length;
  }

  unmount() {}
}

/** A signed job link's `exp` and `sig` (chat answers link job pages so): read-only access without a key. */
export function jobAccess(search = location.search) {
  const params = new URLSearchParams(search);
  const exp = params.get("exp");
  const sig = params.get("sig");
  return exp && sig ? new URLSearchParams({ exp, sig }).toString() : "";
}

/** GET with a signed job link: a refusal says so on the page instead of asking for a key the reader never had. */
async function getSigned(path) {
  const response = await fetch(path, { headers: { Accept: "application/json", ...authHeaders() } });
  if (!response.ok) throw new HttpError(response.status, await problemOf(response));
  return response.json();
}

export class JobPage {
  constructor(jobId, access = jobAccess()) {
    this.jobId = jobId;
    this.access = access;
    this.panel = null;
    this.el = h("div", { class: "page" }, h("h1", {}, "Job"), h("p", { class: "muted" }, "Loading…"));
  }

  async mount() {
    let job;
    try {
      const path = `/api/jobs/${encodeURIComponent(this.jobId)}`;
      job = this.access ? await getSigned(`${path}?${this.access}`) : await getJSON(path);
    } catch (err) {
      const box = this.access && err.status === 401
        ? h("p", { class: "error", role: "alert" }, "This job link has expired or is not valid: ask about the job in the chat for a fresh link.")
        : errorBox(err, `job ${this.jobId}`);
      clear(this.el).append(h("h1", {}, "Job"), box);
      return;
    }
    // A model kept from this tab's earlier view resumes from its last event; otherwise start from the server's snapshot.
    const stored = JobModel.load(this.jobId);
    const model = stored || modelFromSnapshot(job);
    if (!model.graph && job.graph) model.setGraph(job.graph);
    this.panel = new JobPanel(model, { access: this.access });
    if (this.access && !apiKey()) this.panel.cancelBtn.remove(); // a signed link reads; cancelling needs the key
    const goal = job.goal || job.graph?.context?.goal;
    clear(this.el).append(...[  // Element.append writes a null child as the text "null": only what there is
      h("h1", {}, "Job"),
      goal ? h("p", { class: "goal" }, goal) : null,
      h("p", { class: "muted" }, [job.pipeline && `pipeline ${job.pipeline}`, when(job.created_at || job.created) && `created ${when(job.created_at || job.created)}`].filter(Boolean).join(" · ")),
      this.panel.el].filter(Boolean));
    model.save();
    this.panel.follow();
  }

  unmount() {
    this.panel?.stop();
  }
}

function deviceView(d) {
  const mem = Number.isFinite(d.total_mb) ? ` · ${Math.round(d.free_mb ?? 0)} of ${Math.round(d.total_mb)} MB free` : "";
  return h("li", { class: `device device-${d.kind || "unknown"}` }, h("strong", {}, d.kind === "cuda" ? "GPU " : d.kind === "cpu" ? "CPU only " : ""), d.name || "", mem);
}

function serviceRow(s) {
  const est = s.estimate ? formatDuration(s.estimate.duration_s) : "";
  return h("tr", { class: s.available === false ? "unavailable" : "", dataset: { service: s.id } },
    h("td", { class: "service-id" }, h("code", {}, s.id), s.hidden ? h("span", { class: "badge" }, "diagnostic") : null),
    h("td", { "data-label": "What it does", class: "md", html: renderMarkdown(s.description || "") }),
    h("td", { "data-label": "Availability" }, s.available === false ? h("span", { class: "badge status-failed", title: s.unavailable_reason || "" }, "unavailable") : h("span", { class: "badge status-completed" }, "available"),
      s.available === false && s.unavailable_reason ? h("div", { class: "muted" }, s.unavailable_reason) : null),
    h("td", { "data-label": "Needs a GPU" }, s.gpu ? "yes" : "no"),
    h("td", { "data-label": "Typical time" }, est));
}

export class CapabilitiesPage {
  constructor() {
    this.el = h("div", { class: "page" }, h("h1", {}, "Capabilities"), h("p", { class: "muted" }, "Loading…"));
  }

  async mount() {
    let manifest;
    try {
      manifest = await getJSON("/api/capabilities");
    } catch (err) {
      clear(this.el).append(h("h1", {}, "Capabilities"), errorBox(err, "the capabilities"));
      return;
    }
    const services = Object.values(manifest.services || {});
    const planes = new Set(["control", "gpu", ...Object.keys(manifest.planes || {})]);
    const sections = [...planes].map((plane) => {
      const status = manifest.planes?.[plane] || { executors: [], devices: [] };
      const mine = services.filter((s) => (s.planes || []).includes(plane)).sort((a, b) => a.id.localeCompare(b.id));
      const live = status.executors?.length || 0;
      return h("section", { class: "plane", "aria-label": `${plane} plane`, dataset: { plane } },
        h("h2", {}, `${plane === "gpu" ? "GPU" : "Control"} plane `,
          h("span", { class: `badge ${live ? "status-completed" : "status-failed"}` }, live ? `${live} executor${live > 1 ? "s" : ""} live` : "no live executor")),
        status.devices?.length ? h("ul", { class: "devices" }, status.devices.map(deviceView)) : null,
        h("div", { class: "table-wrap" }, h("table", { class: "responsive" },
          h("thead", {}, h("tr", {}, ["Service", "What it does", "Availability", "GPU", "Typical time"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, mine.length ? mine.map(serviceRow) : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No services"))))));
    });
    const overview = h("ul", { class: "overview", "aria-label": "Planes" }, [...planes].map((plane) => {
      const status = manifest.planes?.[plane] || {};
      const live = status.executors?.length || 0;
      const devices = (status.devices || []).map((d) => `${d.name || d.kind}${Number.isFinite(d.free_mb) ? `, ${Math.round(d.free_mb)} MB free` : ""}`);
      const offered = services.filter((s) => (s.planes || []).includes(plane) && s.available !== false).length;
      return h("li", {}, h("strong", {}, plane === "gpu" ? "GPU plane" : "Control plane"), `: ${live} live executor${live === 1 ? "" : "s"}, ${offered} services available`,
        devices.length ? ` · ${devices.join("; ")}` : "");
    }));
    clear(this.el).append(h("h1", {}, "Capabilities"), overview, ...sections);
  }

  unmount() {}
}

/** A path the UI has no page for (a mistyped link): says so and where to go, instead of the chat. */
export class NotFoundPage {
  constructor(path) {
    this.el = h("div", { class: "page not-found" },
      h("h1", {}, "Page not found"),
      h("p", {}, "There is no page at ", h("code", {}, path), "."),
      h("p", {}, "Go to ", h("a", { href: "/" }, "the chat"), ", ", h("a", { href: "/jobs" }, "your jobs"), ", ",
        h("a", { href: "/capabilities" }, "what Spinbot can do"), " or ", h("a", { href: "/profiles" }, "profiles"), "."));
  }

  mount() {}

  unmount() {}
}
