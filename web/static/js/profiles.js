// The profiles page (a portrait and a prepared voice per profile, made from uploaded files; the voice is
// prepared by a job whose progress shows here) and the composer's profile picker.
import { artifactUrl, authHeaders, getJSON, postJSON } from "./api.js";
import { problemText } from "./chat.js";
import { clear, h, percent } from "./dom.js";
import { HttpError, problemOf } from "./sse.js";

const POLL_MS = 1000;

/** Upload files (multipart) with the API key; returns the stored items ({key, name, ...}) in order. */
async function uploadFiles(files) {
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  const response = await fetch("/api/uploads", { method: "POST", headers: { Accept: "application/json", ...authHeaders() }, body: form });
  if (!response.ok) throw new HttpError(response.status, await problemOf(response));
  return (await response.json()).items;
}

async function deleteProfile(id) {
  const response = await fetch(`/api/profiles/${encodeURIComponent(id)}`, { method: "DELETE", headers: authHeaders() });
  if (!response.ok && response.status !== 404) throw new HttpError(response.status, await problemOf(response));
}

async function makeDefault(id) {
  const response = await fetch(`/api/profiles/${encodeURIComponent(id)}`, {
    method: "PATCH", headers: { "Content-Type": "application/json", ...authHeaders() }, body: JSON.stringify({ default: true }) });
  if (!response.ok) throw new HttpError(response.status, await problemOf(response));
}

export async function listProfiles() {
  return (await getJSON("/api/profiles")).items || [];
}

function featuresText(f) {
  if (!f) return "";
  const parts = [];
  if (Number.isFinite(f.pitch_hz)) parts.push(`pitch ${Math.round(f.pitch_hz)} Hz`);
  if (Number.isFinite(f.wpm)) parts.push(`${Math.round(f.wpm)} words/min`);
  if (Number.isFinite(f.duration_s)) parts.push(`${f.duration_s.toFixed(1)} s sample`);
  return parts.join(" · ");
}

export class ProfilesPage {
  constructor() {
    this.list = h("div", { class: "profiles", "aria-label": "Profiles", "aria-live": "polite" });
    this.note = h("p", { class: "error", role: "alert", hidden: true });
    this.timer = null;
    this.el = h("div", { class: "page" },
      h("h1", {}, "Profiles"),
      h("p", { class: "muted" }, "A profile keeps a face and a prepared voice. Name it in a goal (“make Anna say good morning”), say “in my voice” for the default one, or pick it under the chat's message box: nothing is prepared again."),
      this.list,
      this.form());
  }

  form() {
    const field = (label, input) => h("label", { class: "field" }, h("span", {}, label), input);
    this.nameInput = h("input", { name: "name", required: true, maxlength: 40, autocomplete: "off", placeholder: "Anna" });
    this.portraitInput = h("input", { name: "portrait", type: "file", accept: "image/*" });
    this.sampleInput = h("input", { name: "voice_sample", type: "file", accept: "audio/*" });
    this.textInput = h("textarea", { name: "reference_text", rows: 2, maxlength: 2000, placeholder: "The words the recording says, exactly" });
    this.defaultInput = h("input", { name: "default", type: "checkbox" });
    this.createBtn = h("button", { type: "submit", class: "primary" }, "Create profile");
    return h("form", { class: "profile-form", "aria-label": "New profile", onsubmit: (e) => { e.preventDefault(); this.create(); } },
      h("h2", {}, "New profile"),
      field("Name", this.nameInput),
      field("Portrait (image)", this.portraitInput),
      field("Voice sample (recording of one person speaking)", this.sampleInput),
      field("What the sample says", this.textInput),
      h("label", { class: "switch" }, this.defaultInput, " Default profile (“my voice”)"),
      this.firstNote = h("p", { class: "muted first-default", hidden: true }, "Your first profile becomes the default whether or not this is ticked: “my voice” needs one."),
      this.note,
      h("div", {}, this.createBtn));
  }

  async mount() {
    await this.refresh();
  }

  unmount() {
    clearTimeout(this.timer);
    this.timer = null;
    this.gone = true;
  }

  say(text) {
    this.note.hidden = !text;
    this.note.textContent = text || "";
  }

  async refresh() {
    let profiles;
    try {
      profiles = await listProfiles();
    } catch (err) {
      clear(this.list).append(h("p", { class: "error", role: "alert" }, `Could not load the profiles: ${err.message}`));
      return;
    }
    const progress = await Promise.all(profiles.map((p) => (p.status === "preparing" && p.pending_job
      ? getJSON(`/api/jobs/${encodeURIComponent(p.pending_job)}`).catch(() => null) : null)));
    this.firstNote.hidden = profiles.length > 0;
    clear(this.list).append(...(profiles.length
      ? profiles.map((p, i) => this.card(p, progress[i]))
      : [h("p", { class: "muted" }, "No profiles yet: make one below from a portrait and a voice sample.")]));
    clearTimeout(this.timer);
    if (!this.gone && profiles.some((p) => p.status === "preparing")) this.timer = setTimeout(() => this.refresh(), POLL_MS);
  }

  card(p, job) {
    const status = p.status === "ready" ? "completed" : p.status === "failed" ? "failed" : "running";
    const preparing = p.status === "preparing"
      ? h("div", { class: "profile-progress" },
        h("div", { class: "bar", role: "progressbar", "aria-label": `Preparing ${p.name}'s voice`, "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": Math.round((job?.progress || 0) * 100) },
          h("div", { class: "bar-fill", style: `width:${percent(job?.progress).replace(" ", "")}` })),
        h("p", { class: "muted" }, "Preparing the voice… (", h("a", { href: `/jobs/${encodeURIComponent(p.pending_job)}` }, "see its job"), ")"))
      : null;
    return h("article", { class: "profile-card", dataset: { profile: p.id, status: p.status }, "aria-label": p.name },
      p.portrait ? h("img", { src: artifactUrl(p.portrait), alt: `${p.name}'s portrait`, class: "profile-portrait" }) : h("div", { class: "profile-portrait none" }, "no portrait"),
      h("div", { class: "profile-body" },
        h("h2", {}, p.name, " ", p.default ? h("span", { class: "badge" }, "default") : null, " ", h("span", { class: `badge status-${status}` }, p.status)),
        preparing,
        p.error ? h("p", { class: "error profile-error" }, p.error.message, p.error.hint ? ` (${p.error.hint})` : "") : null,
        p.voice ? h("audio", { controls: true, preload: "none", src: artifactUrl(p.voice), "aria-label": `${p.name}'s prepared voice` }) : null,
        p.features ? h("p", { class: "muted" }, featuresText(p.features)) : null,
        p.reference_text ? h("p", { class: "muted" }, `“${p.reference_text}”`) : null,
        h("div", { class: "profile-actions" },
          p.default || p.status === "failed" ? null : h("button", { type: "button", onclick: () => this.makeDefault(p) }, "Make default"),
          h("button", { type: "button", class: "danger", onclick: () => this.remove(p) }, "Delete"))));
  }

  async makeDefault(p) {
    try {
      await makeDefault(p.id);
    } catch (err) {
      this.say(`Could not make ${p.name} the default: ${err.message}`);
    }
    await this.refresh();
  }

  async remove(p) {
    if (!window.confirm(`Delete profile ${p.name}?`)) return;
    try {
      await deleteProfile(p.id);
    } catch (err) {
      this.say(`Could not delete ${p.name}: ${err.message}`);
    }
    await this.refresh();
  }

  async create() {
    const portrait = this.portraitInput.files[0];
    const sample = this.sampleInput.files[0];
    const text = this.textInput.value.trim();
    if (!portrait && !sample) return this.say("Choose a portrait, a voice sample, or both.");
    if (sample && !text) return this.say("Write what the voice sample says: the voice is checked against it.");
    this.say(null);
    this.createBtn.disabled = true;
    try {
      const files = [portrait, sample].filter(Boolean);
      const stored = await uploadFiles(files);
      const key = (f) => (f ? stored[files.indexOf(f)].key : undefined);
      await postJSON("/api/profiles", {
        name: this.nameInput.value.trim(),
        default: this.defaultInput.checked,
        ...(portrait ? { portrait: key(portrait) } : {}),
        ...(sample ? { voice_sample: key(sample), reference_text: text } : {}),
      });
      this.el.querySelector("form.profile-form").reset();
    } catch (err) {
      this.say(`Not created: ${problemText(err)}`);
    } finally {
      this.createBtn.disabled = false;
    }
    await this.refresh();
  }
}

/** The composer's profile picker: a <select> of the key's ready profiles; value "" for none. */
export function profilePicker() {
  const select = h("select", { class: "profile-pick", "aria-label": "Profile", title: "Plan with this profile's face and voice" },
    h("option", { value: "" }, "No profile"));
  listProfiles().then((profiles) => {
    for (const p of profiles) {
      // A failed preparation left no voice: such a profile is offered only for its portrait, and says so.
      if (p.status === "failed" && !p.portrait) continue;
      const label = p.status === "failed" ? `${p.name} (portrait only: its voice failed)` : p.name + (p.default ? " (default)" : "");
      select.append(h("option", { value: p.id }, label));
    }
  }).catch(() => { select.hidden = true; });
  return select;
}
