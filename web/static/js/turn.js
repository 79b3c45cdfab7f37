// One assistant turn in the chat: streaming markdown text, a status line, the plan card and the
// live job panel, fed by the chat stream's events.
import { h } from "./dom.js";
import { JobModel } from "./jobmodel.js";
import { JobPanel } from "./jobview.js";
import { renderMarkdown } from "./markdown.js";
import { planCard } from "./plan.js";

/** One assistant turn: streaming markdown text, a status line, the plan card and the job panel. */
export class AssistantTurn {
  constructor(chat) {
    this.chat = chat;
    this.text = "";
    this.plan = null;
    this.panel = null;
    this.statusEl = h("div", { class: "turn-status muted", "aria-live": "polite" });
    this.body = h("div", { class: "md" });
    this.extras = h("div", { class: "turn-extras" });
    this.el = h("article", { class: "msg assistant", "aria-label": "Assistant" }, this.statusEl, this.body, this.extras);
  }

  setStatus(text) {
    this.statusEl.textContent = text || "";
  }

  setText(text) {
    this.text = text;
    this.body.innerHTML = renderMarkdown(text);
    this.linkShownImages();
  }

  /** Pictures the job panel already shows (its artifacts) stay in the answer as links, not a second copy. */
  linkShownImages() {
    if (!this.panel) return;
    for (const img of this.body.querySelectorAll("img")) {
      const src = img.getAttribute("src") || "";
      if (!src.includes("/api/artifacts/")) continue;
      img.replaceWith(h("a", { href: src, class: "shown-below" }, img.alt || "image"));
    }
  }

  showPlan(plan, { review }) {
    this.plan = plan;
    this.planEl = planCard(plan, {
      review,
      onRun: () => this.chat.runPlan(this, plan.graph),
      onChange: () => this.chat.focusComposer("Say what to change, e.g. “make it 60 seconds instead”"),
    });
    this.extras.prepend(this.planEl);
  }

  /** The job panel for this turn (created on the first job event). */
  attachJob(jobId, model = null) {
    if (this.panel?.model.id === jobId) return this.panel;
    model ||= JobModel.load(jobId) || new JobModel(jobId, { graph: this.plan?.graph, estimate: this.plan?.evaluation?.estimate });
    if (!model.graph && this.plan?.graph) model.setGraph(this.plan.graph);
    this.panel = new JobPanel(model);
    this.planEl?.dagWrap.remove(); // the job panel draws the same graph, live
    this.extras.append(this.panel.el);
    this.linkShownImages();
    this.chat.rememberJob(jobId);
    model.save();
    return this.panel;
  }

  onEvent(ev) {
    const d = ev.data || {};
    switch (ev.event) {
      case "conversation":
        this.chat.setConversation(d.id, { keepMessages: true });
        break;
      case "planning":
        // Only a second attempt (a replan) is worth numbering; the stage says what is happening.
        this.setStatus(`Planning${d.attempt > 1 ? ` (attempt ${d.attempt})` : ""}${d.message ? `: ${d.message}` : d.stage ? `: ${d.stage}` : ""}…`);
        break;
      case "plan":
        this.setStatus("");
        this.showPlan(d, { review: this.chat.review });
        break;
      case "message":
        if (typeof d === "string") this.setText(this.text + d);
        else if (typeof d.text === "string") this.setText(d.text);
        else if (typeof d.delta === "string") this.setText(this.text + d.delta);
        break;
      case "error":
        this.setStatus("");
        this.extras.append(h("p", { class: "error", role: "alert" }, d.detail || d.message || d.title || "Something went wrong"));
        break;
      case "done":
        this.setStatus("");
        break;
      case "job": {
        const id = d.id || d.job_id;
        if (id) this.attachJob(id);
        this.panel?.apply(ev);
        break;
      }
      default:
        this.panel?.apply(ev);
    }
  }
}
