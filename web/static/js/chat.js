// The chat page: conversation list, messages (markdown), streaming answers, attachments,
// the plan card and the live job panel under the turn that started the job.
import { authHeaders, getJSON, postJSON } from "./api.js";
import { clear, formatBytes, h } from "./dom.js";
import { JobModel, modelFromSnapshot } from "./jobmodel.js";
import { renderMarkdown } from "./markdown.js";
import { profilePicker } from "./profiles.js";
import { postEvents } from "./sse.js";
import { AssistantTurn } from "./turn.js";

const REVIEW_KEY = "spinbot.review";
const MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024;
const MAX_MESSAGE_CHARS = 20_000; // the server's limit on one message (POST /api/chat)
const convJobsKey = (cid) => `spinbot.conv.${cid}.jobs`;

function listOf(payload, ...names) {
  if (Array.isArray(payload)) return payload;
  for (const n of names) if (Array.isArray(payload?.[n])) return payload[n];
  return [];
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

export class ChatPage {
  constructor({ conversationId = null, onConversations = () => {} }) {
    this.conversationId = conversationId;
    this.onConversations = onConversations;
    this.review = localStorage.getItem(REVIEW_KEY) === "1";
    this.attachments = [];
    this.busy = false;
    this.panels = [];
    this.build();
  }

  build() {
    this.messages = h("div", { class: "messages", role: "log", "aria-label": "Conversation" });
    // No maxlength: it would cut a long paste mid-word and send the rest without a word; the note says instead.
    this.input = h("textarea", { class: "composer-input", rows: 2, placeholder: "Describe a goal (Enter sends, Shift+Enter adds a line)", "aria-label": "Message" });
    this.composerNote = h("p", { class: "error composer-note", role: "alert", hidden: true });
    this.input.addEventListener("input", () => this.checkLength());
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.send();
      }
    });
    this.fileInput = h("input", { type: "file", accept: "image/*,audio/*,video/*,text/*,.txt,.md,.srt", multiple: true, class: "visually-hidden", id: "attach-input", onchange: () => this.addFiles(this.fileInput.files) });
    this.previews = h("div", { class: "attach-previews", "aria-label": "Attachments" });
    const reviewBox = h("input", { type: "checkbox", id: "review-switch", checked: this.review, onchange: (e) => {
      this.review = e.target.checked;
      localStorage.setItem(REVIEW_KEY, this.review ? "1" : "0");
    } });
    this.sendBtn = h("button", { type: "submit", class: "primary" }, "Send");
    this.profileSelect = profilePicker();
    this.form = h("form", { class: "composer", onsubmit: (e) => { e.preventDefault(); this.send(); } },
      this.composerNote,
      this.previews,
      this.input,
      h("div", { class: "composer-bar" },
        h("label", { class: "button attach-btn", for: "attach-input", tabIndex: 0, role: "button", onkeydown: (e) => {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); this.fileInput.click(); }
        } }, "Attach"),
        this.fileInput,
        h("label", { class: "switch" }, reviewBox, " Review before run"),
        this.profileSelect,
        this.sendBtn));
    this.form.addEventListener("dragover", (e) => e.preventDefault());
    this.form.addEventListener("drop", (e) => { e.preventDefault(); this.addFiles(e.dataTransfer.files); });
    this.el = h("div", { class: "chat" }, this.messages, this.form);
  }

  async mount() {
    if (this.conversationId) await this.loadConversation(this.conversationId);
    else this.showEmpty();
    this.input.focus();
  }

  unmount() {
    this.panels.forEach((p) => p.stop());
    this.abort?.abort();
  }

  showEmpty() {
    clear(this.messages).append(h("div", { class: "empty" },
      h("h2", {}, "What should Spinbot make?"),
      h("p", { class: "muted" }, "State a goal; the planner turns it into a task graph, the evaluator checks it, and the control and GPU planes run it while you watch."),
      h("p", { class: "muted" }, "For example: “a 20-second talking-head video explaining how solar panels work, female voice”.")));
  }

  focusComposer(placeholder) {
    if (placeholder) this.input.placeholder = placeholder;
    this.input.focus();
  }

  setConversation(id, { keepMessages = false } = {}) {
    if (!id || id === this.conversationId) return;
    this.conversationId = id;
    history.replaceState(null, "", `/?c=${encodeURIComponent(id)}`);
    this.onConversations(id);
    if (!keepMessages) this.loadConversation(id);
  }

  scrollDown() {
    this.messages.scrollTop = this.messages.scrollHeight;
  }

  appendUser(text, attachments = []) {
    const body = h("div", { class: "md" });
    body.innerHTML = renderMarkdown(text);
    const el = h("article", { class: "msg user", "aria-label": "You" }, body,
      attachments.length ? h("div", { class: "attach-previews" }, attachments.map((a) => this.previewOf(a))) : null);
    this.messages.querySelector(".empty")?.remove();
    this.messages.append(el);
    return el;
  }

  previewOf(a, onRemove) {
    const type = a.contentType || a.content_type || "";
    const src = a.dataUrl || a.url;
    const media = !src ? null
      : type.startsWith("image/") ? h("img", { src, alt: a.name || "image" })
        : type.startsWith("audio/") ? h("audio", { src, controls: true, preload: "metadata" }) : null;
    return h("figure", { class: "attach-preview" }, media,
      h("figcaption", {}, a.name || type,
        onRemove && h("button", { type: "button", class: "link", "aria-label": `Remove ${a.name}`, onclick: onRemove }, "×")));
  }

  async addFiles(files) {
    for (const file of files) {
      if (!/^(image|audio|video|text)\//.test(file.type) && !/\.(txt|md|srt)$/i.test(file.name)) {
        this.messages.append(h("p", { class: "error", role: "alert" },
          `${file.name} was not attached: it is ${file.type || "not a known file type"}; attach a picture (PNG, JPEG, WebP), a recording (WAV, MP3, OGG), a video or a text file (.txt, .md, .srt)`));
        continue;
      }
      if (file.size > MAX_ATTACHMENT_BYTES) {
        this.messages.append(h("p", { class: "error", role: "alert" }, `${file.name} was not attached: it is ${formatBytes(file.size)}; the limit is ${formatBytes(MAX_ATTACHMENT_BYTES)}`));
        continue;
      }
      this.attachments.push({ name: file.name, contentType: file.type, size: file.size, dataUrl: await readAsDataUrl(file) });
    }
    this.fileInput.value = "";
    this.renderPreviews();
  }

  renderPreviews() {
    this.previews.replaceChildren(...this.attachments.map((a, i) => this.previewOf(a, () => {
      this.attachments.splice(i, 1);
      this.renderPreviews();
    })));
  }

  /** While typing or after a paste: over the limit says so at once; any other note is stale and goes. */
  checkLength() {
    const n = this.input.value.trim().length;
    this.noteComposer(n > MAX_MESSAGE_CHARS
      ? `Too long to send: ${n.toLocaleString("en")} characters; the limit is ${MAX_MESSAGE_CHARS.toLocaleString("en")}. Shorten it by ${(n - MAX_MESSAGE_CHARS).toLocaleString("en")}.`
      : null);
  }

  /** A note above the composer about the message being written (why it was not sent); null clears it. */
  noteComposer(text) {
    this.composerNote.hidden = !text;
    this.composerNote.textContent = text || "";
  }

  /** Enter or Send: the composer's message goes now, or, while an answer is still streaming, is queued. */
  async send() {
    const raw = this.input.value;
    const text = raw.trim();
    if (!text) {
      this.noteComposer(raw ? "Nothing to send: the message holds only spaces. Write a goal or a question." : null);
      return;
    }
    if (text.length > MAX_MESSAGE_CHARS) {
      this.noteComposer(`Not sent: the message is ${text.length.toLocaleString("en")} characters; the limit is ${MAX_MESSAGE_CHARS.toLocaleString("en")}. Shorten it and send again.`);
      return;
    }
    this.noteComposer(null);
    const attachments = this.attachments;
    this.attachments = [];
    this.renderPreviews();
    this.input.value = "";
    if (this.busy) this.enqueue(text, attachments);
    else await this.post(text, attachments);
  }

  /**
   * One message waits while an answer streams (the job is still running): it is shown as queued and sent
   * as a follow-up when that answer ends. Edit takes it back into the composer; a second one replaces it.
   */
  enqueue(text, attachments) {
    const replaced = Boolean(this.queued);
    this.queuedEl?.remove();
    this.queued = { text, attachments };
    const body = h("div", { class: "md" });
    body.innerHTML = renderMarkdown(text);
    this.queuedEl = h("article", { class: "msg user queued", "aria-label": "You (queued)" }, body,
      h("p", { class: "queued-note muted" },
        `${replaced ? "Queued instead of your earlier message" : "Queued"}: sent when the current answer ends. `,
        h("button", { type: "button", class: "link", onclick: () => this.unqueue() }, "Edit")));
    this.messages.append(this.queuedEl);
    this.scrollDown();
  }

  unqueue() {
    if (!this.queued) return;
    if (!this.input.value) this.input.value = this.queued.text;
    this.attachments = [...this.queued.attachments, ...this.attachments];
    this.renderPreviews();
    this.queued = null;
    this.queuedEl?.remove();
    this.queuedEl = null;
    this.input.focus();
  }

  async post(text, attachments) {
    const userEl = this.appendUser(text, attachments);
    const turn = new AssistantTurn(this);
    turn.setStatus("Thinking…");
    this.messages.append(turn.el);
    this.scrollDown();
    this.busy = true;
    this.sendBtn.textContent = "Queue";
    this.sendBtn.title = "An answer is still coming: this message is sent when it ends";
    this.abort = new AbortController();
    let answered = false; // an event came back: the server took the message
    const body = {
      message: text,
      auto_run: !this.review,
      ...(this.profileSelect.value ? { profile: this.profileSelect.value } : {}),
      ...(this.conversationId ? { conversation_id: this.conversationId } : {}),
      ...(attachments.length ? { attachments: attachments.map((a) => ({ name: a.name, content_type: a.contentType, data: a.dataUrl })) } : {}),
    };
    try {
      await postEvents("/api/chat", body, {
        headers: authHeaders(),
        signal: this.abort.signal,
        onEvent: (ev) => {
          answered = true;
          turn.onEvent(ev);
          this.scrollDown();
        },
      });
    } catch (err) {
      if (err.name !== "AbortError" && !answered && err.status) {
        // Refused before anything was stored: the message goes back into the composer with the server's reason.
        userEl.remove();
        turn.el.remove();
        if (!this.messages.children.length) this.showEmpty(); // the welcome comes back: nothing was sent
        if (!this.input.value) this.input.value = text;
        const refused = err.problem?.field;
        this.attachments = attachments.filter((a) => !refused || a.name !== refused);
        this.renderPreviews();
        this.noteComposer(`Not sent: ${problemText(err)}`);
      } else if (err.name !== "AbortError") {
        turn.setStatus("");
        if (!turn.panel) turn.extras.append(h("p", { class: "error", role: "alert" }, `The answer stopped: ${err.message}`));
      }
    } finally {
      this.busy = false;
      this.sendBtn.textContent = "Send";
      this.sendBtn.title = "";
    }
    // A job may outlive the chat answer (or the connection): follow it on its own resumable stream,
    // and take the final answer from the stored conversation when it ends.
    if (turn.panel && !turn.panel.model.terminal) {
      turn.panel.onEnd = () => this.refreshAnswer(turn);
      this.follow(turn.panel);
    }
    this.onConversations(this.conversationId);
    if (this.queued) {
      const { text: next, attachments: files } = this.queued;
      this.queued = null;
      this.queuedEl?.remove();
      this.queuedEl = null;
      await this.post(next, files);
    }
  }

  /** Jobs this tab started, per conversation: a reload finds them even before the server stored the turn. */
  rememberJob(jobId) {
    const cid = this.conversationId;
    if (!cid) return;
    const ids = JSON.parse(sessionStorage.getItem(convJobsKey(cid)) || "[]");
    if (!ids.includes(jobId)) sessionStorage.setItem(convJobsKey(cid), JSON.stringify([...ids, jobId]));
  }

  follow(panel) {
    if (!this.panels.includes(panel)) this.panels.push(panel);
    panel.follow();
  }

  /**
   * The stored answer for a turn whose job ended off the chat stream (the server writes it at the end).
   * A turn is one stored message: the one it was loaded from, else the first that names its job (later
   * answers may name the job too, e.g. one about its progress, and are turns of their own).
   */
  async refreshAnswer(turn, tries = 10) {
    const jobId = turn.panel?.model.id;
    for (let i = 0; i < tries && this.conversationId; i += 1) {
      await new Promise((r) => setTimeout(r, 400 * (i + 1)));
      try {
        const conv = await getJSON(`/api/conversations/${encodeURIComponent(this.conversationId)}`);
        const mine = (m) => m.role === "assistant" && (turn.messageId != null ? m.id === turn.messageId : m.job_id === jobId);
        const stored = listOf(conv, "messages").find(mine);
        if (stored) turn.messageId = stored.id;
        if (stored?.metadata?.status || (stored && !stored.content.trim().endsWith("…"))) {
          turn.setText(stored.content);
          return;
        }
      } catch { /* try again */ }
    }
  }

  async runPlan(turn, graph) {
    const job = await postJSON("/api/jobs", { graph, ...(this.conversationId ? { conversation_id: this.conversationId } : {}) });
    const id = job.id || job.job_id;
    const panel = turn.attachJob(id);
    if (job.status) panel.apply({ event: "job", data: job, id: null });
    // The stored message says the same (POST /api/jobs links the job to it); at the job's end the server
    // writes the final answer with links into it, which replaces this text.
    turn.setText(turn.text.replace(/\n*Press \*\*Run\*\*[^\n]*$/, `\n\nRunning as job \`${id}\`…`));
    panel.onEnd = () => this.refreshAnswer(turn);
    this.follow(panel);
    this.scrollDown();
  }

  async loadConversation(id) {
    let conv;
    try {
      conv = await getJSON(`/api/conversations/${encodeURIComponent(id)}`);
    } catch (err) {
      clear(this.messages).append(h("p", { class: "error", role: "alert" }, `Could not open the conversation: ${err.message}`));
      return;
    }
    clear(this.messages);
    const seenJobs = new Set();
    for (const m of listOf(conv, "messages")) {
      if (m.role === "user") {
        this.appendUser(m.content || "", (m.attachments || []).map((a) => ({ ...a, url: a.url })));
        continue;
      }
      if (m.role !== "assistant") continue;
      const turn = new AssistantTurn(this);
      turn.messageId = m.id;
      turn.setText(m.content || "");
      if (m.graph) turn.showPlan({ graph: m.graph, evaluation: m.metadata?.evaluation }, { review: !m.job_id });
      this.messages.append(turn.el);
      // One job, one panel: under the message that started it (a later answer about it only names it).
      if (m.job_id && !seenJobs.has(m.job_id)) {
        seenJobs.add(m.job_id);
        await this.resumeJob(turn, m.job_id);
      }
    }
    // Jobs this tab started whose turn the server has not stored yet (e.g. reloaded mid-answer).
    for (const jobId of JSON.parse(sessionStorage.getItem(convJobsKey(id)) || "[]")) {
      if (seenJobs.has(jobId)) continue;
      const turn = new AssistantTurn(this);
      this.messages.append(turn.el);
      await this.resumeJob(turn, jobId);
    }
    this.scrollDown();
  }

  async resumeJob(turn, jobId) {
    let model = JobModel.load(jobId);
    if (!model) {
      try {
        model = modelFromSnapshot(await getJSON(`/api/jobs/${encodeURIComponent(jobId)}`));
      } catch {
        model = new JobModel(jobId, { graph: turn.plan?.graph });
      }
    }
    const panel = turn.attachJob(jobId, model);
    if (!model.terminal) {
      panel.onEnd = () => this.refreshAnswer(turn);
      this.follow(panel);
    }
  }
}

/** What an HTTP refusal says: the problem's detail, what in the request was wrong, and its hint. */
export function problemText(err) {
  const p = err.problem || {};
  const wrong = (p.errors || []).map((e) => {
    const where = (e.loc || []).filter((part) => part !== "body").join(".");
    return `${where ? `${where}: ` : ""}${e.msg}`;
  });
  return [err.message, wrong.length ? `(${wrong.join("; ")})` : ""].filter(Boolean).join(" ");
}

/** Titles that read the same get what tells them apart: when each was last active, and a number if that is the same too. */
function conversationLabels(items) {
  const count = (map, key) => map.set(key, (map.get(key) || 0) + 1);
  const titles = new Map();
  for (const c of items) count(titles, c.title || "Untitled");
  const labels = items.map((c) => {
    const title = c.title || "Untitled";
    const at = Date.parse(c.updated || c.created || "");
    const when = titles.get(title) > 1 && Number.isFinite(at)
      ? new Date(at).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "";
    return { title, when };
  });
  const same = new Map();
  for (const l of labels) if (l.when) count(same, `${l.title}\u0000${l.when}`);
  const seen = new Map();
  for (const l of [...labels].reverse()) { // the list is newest first: number the oldest 1
    const key = `${l.title}\u0000${l.when}`;
    if (same.get(key) > 1) l.when += ` · #${count(seen, key).get(key)}`;
  }
  return labels;
}

/** The sidebar's conversation list. */
export async function loadConversations(listEl, currentId) {
  let items = [];
  try {
    items = listOf(await getJSON("/api/conversations"), "conversations", "items", "data");
  } catch (err) {
    listEl.replaceChildren(h("li", { class: "muted" }, err.status === 401 ? "Set an API key to see your conversations" : "Conversations unavailable"));
    return;
  }
  const labels = conversationLabels(items);
  listEl.replaceChildren(...items.map((c, i) => h("li", {},
    h("a", { href: `/?c=${encodeURIComponent(c.id)}`, "aria-current": c.id === currentId ? "page" : null, title: c.title || c.id },
      h("span", { class: "conv-title" }, labels[i].title),
      labels[i].when ? h("span", { class: "conv-when muted" }, labels[i].when) : null))));
  if (!items.length) listEl.append(h("li", { class: "muted" }, "No conversations yet"));
}
