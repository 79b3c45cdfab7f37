// The API client: JSON calls with the optional API key, and artifact URLs.
import { HttpError, problemOf } from "./sse.js";

const KEY_STORAGE = "spinbot.apiKey";

export function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

export function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function request(method, path, body) {
  const init = { method, headers: { Accept: "application/json", ...authHeaders() } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) window.dispatchEvent(new CustomEvent("spinbot:unauthorized"));
  if (!response.ok) throw new HttpError(response.status, await problemOf(response));
  return response.status === 204 ? null : response.json();
}

export const getJSON = (path) => request("GET", path);
export const postJSON = (path, body) => request("POST", path, body ?? {});

/** Where an artifact descriptor (or key) can be fetched; media elements seek through range requests. */
export function artifactUrl(artifact) {
  if (artifact?.url) return artifact.url;
  const key = typeof artifact === "string" ? artifact : artifact.key;
  const path = `/api/artifacts/${key.split("/").map(encodeURIComponent).join("/")}`;
  // <audio>/<video>/<img> cannot send headers, so a configured key travels as a query parameter.
  const token = apiKey();
  return token ? `${path}?api_key=${encodeURIComponent(token)}` : path;
}
