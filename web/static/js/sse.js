// Server-Sent Events over fetch: POST streams (which EventSource cannot send), auth headers,
// and resumable GET streams that reconnect with Last-Event-ID after a network drop.

/** Parse a text/event-stream body; yields {id, event, data} with data JSON-decoded when it is JSON. */
export async function* readEvents(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const abort = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", abort, { once: true });
  let buffer = "";
  let event = { id: null, event: "", data: [] };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop(); // an unfinished line waits for the next chunk
      for (const line of lines) {
        if (line === "") {
          if (event.data.length || event.event) yield finish(event);
          event = { id: event.id, event: "", data: [], retry: null };
          continue;
        }
        if (line.startsWith(":")) continue; // a comment: keep-alive ping
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") event.data.push(value);
        else if (field === "event") event.event = value;
        else if (field === "id" && !value.includes("\0")) event.id = value;
        else if (field === "retry" && /^\d+$/.test(value)) event.retry = Number(value);
      }
    }
  } finally {
    signal?.removeEventListener("abort", abort);
  }
}

function finish(event) {
  const raw = event.data.join("\n");
  let data = raw;
  try { data = JSON.parse(raw); } catch { /* plain text data stays a string */ }
  return { id: event.id, event: event.event || "message", data, retry: event.retry };
}

/** An HTTP error answer, with the problem-details body when the server sent one. */
export class HttpError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export async function problemOf(response) {
  try { return await response.json(); } catch { return { title: response.statusText }; }
}

/** POST a JSON body and hand each SSE event to onEvent; resolves when the stream ends. */
export async function postEvents(url, body, { headers = {}, signal, onEvent }) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream", ...headers },
    body: JSON.stringify(body),
    signal,
  });
  if (response.status === 401) window.dispatchEvent(new CustomEvent("spinbot:unauthorized"));
  if (!response.ok) throw new HttpError(response.status, await problemOf(response));
  for await (const ev of readEvents(response.body, signal)) onEvent(ev);
}

/**
 * A GET event stream that survives network drops: on a broken connection it waits and
 * reconnects with Last-Event-ID, so no event is lost or repeated. Stops when isDone() says so.
 */
export class ResumableStream {
  constructor(url, { headers = {}, lastEventId = null, onEvent, onState = () => {}, isDone = () => false }) {
    Object.assign(this, { url, headers, lastEventId, onEvent, onState, isDone });
    this.retryMs = 1000;
    this.controller = null;
    this.stopped = false;
  }

  start() {
    this.loop();
    return this;
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
  }

  async loop() {
    let failures = 0;
    while (!this.stopped && !this.isDone()) {
      this.controller = new AbortController();
      try {
        this.onState(failures ? "reconnecting" : "connecting");
        await this.once(this.controller.signal);
        failures = 0;
      } catch (err) {
        if (this.stopped) return;
        if (err instanceof HttpError && err.status >= 400 && err.status < 500 && err.status !== 429) {
          this.onState("failed", err);
          return;
        }
        failures += 1;
      }
      if (this.stopped || this.isDone()) break;
      this.onState("reconnecting");
      await new Promise((r) => setTimeout(r, Math.min(this.retryMs * 2 ** Math.min(Math.max(failures - 1, 0), 4), 15000)));
    }
    this.onState("closed");
  }

  async once(signal) {
    const headers = { Accept: "text/event-stream", ...this.headers };
    if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
    const response = await fetch(this.url, { headers, signal, cache: "no-store" });
    if (!response.ok) throw new HttpError(response.status, await problemOf(response));
    this.onState("open");
    for await (const ev of readEvents(response.body, signal)) {
      if (ev.retry) this.retryMs = ev.retry;
      if (ev.id) this.lastEventId = ev.id;
      this.onEvent(ev);
      if (this.isDone()) { this.controller.abort(); return; }
    }
  }
}
