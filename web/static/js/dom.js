// Tiny DOM helpers: h() for HTML elements, s() for SVG; text is always set as text, never parsed.
const SVG_NS = "http://www.w3.org/2000/svg";

function apply(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.setAttribute("class", value);
    else if (key === "text") el.textContent = value;
    else if (key === "html") el.innerHTML = value; // only ever given renderMarkdown output, which escapes all text
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key in el && !(el instanceof SVGElement) && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function h(tag, attrs, ...children) {
  return append(apply(document.createElement(tag), attrs), children);
}

export function s(tag, attrs, ...children) {
  return append(apply(document.createElementNS(SVG_NS, tag), attrs), children);
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

/** Seconds as spinbot/units.py duration_text says them: "0.4 s", "8.2 s", "45 s", "22 min 30 s", "1 h 5 min". */
export function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  if (seconds < 10) return `${seconds.toFixed(1)} s`;
  if (seconds < 59.5) return `${Math.round(seconds)} s`;
  const whole = Math.round(seconds);
  const m = Math.floor(whole / 60);
  const sec = whole % 60;
  if (m < 60) return sec ? `${m} min ${sec} s` : `${m} min`;
  return m % 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${Math.floor(m / 60)} h`;
}

/** Bytes as spinbot/units.py size_text says them (1 KB = 1024 bytes): "512 bytes", "28 KB", "3.4 MB". */
export function formatBytes(n) {
  if (!Number.isFinite(n)) return "";
  if (n < 1024) return `${Math.max(0, Math.floor(n))} bytes`;
  if (n < 1024 * 1024) return `${Math.max(1, Math.round(n / 1024))} KB`;
  const gb = n >= 1024 ** 3;
  return `${(n / (gb ? 1024 ** 3 : 1024 ** 2)).toFixed(1)} ${gb ? "GB" : "MB"}`;
}

const KIND_NAMES = { image: "image", audio: "audio file", video: "video", text: "text file" };
const FORMAT_NAMES = { mpeg: "MP3", plain: "plain", "svg+xml": "SVG", "octet-stream": "" };

/** A content type in words, as spinbot/units.py kind_text says it: "PNG image", "WAV audio file" (no article). */
export function kindText(contentType) {
  const [major, sub = ""] = (contentType || "").split(";")[0].trim().toLowerCase().split("/");
  const name = sub in FORMAT_NAMES ? FORMAT_NAMES[sub] : sub.replace(/^x-/, "").replace(/^vnd\./, "").toUpperCase();
  const kind = KIND_NAMES[major] || "file";
  return name ? `${name} ${kind}` : kind;
}

export function percent(p) {
  return `${Math.round(Math.max(0, Math.min(1, p || 0)) * 100)} %`;
}
