"""A small Ollama stand-in that speaks the real HTTP wire protocol and replays recorded replies.

The real clients (ollama-python under langchain-ollama's ChatOllama) talk to it over a loopback
socket: `POST /api/chat` streams NDJSON chunks (or answers once with `"stream": false`),
`GET /api/tags` lists the models, `POST /api/show` describes one, and an unknown model is a 404
with Ollama's error body. Every request is recorded so tests can count LLM calls and inspect the
`format` schema and `options` the client sent.

Use the `fake_ollama` fixture (registered from tests/conftest.py):

    fake_ollama.replies.append({"steps": [...]})       # JSON content, dumped for you
    fake_ollama.replies.append(Reply("not json", chunks=3))
    fake_ollama.replies.append(Reply(status=500, error="boom"))
    settings.ollama_url = fake_ollama.url
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

DEFAULT_MODELS = ("qwen2.5:7b-instruct",)


@dataclass
class Reply:
    """One recorded answer to one /api/chat call."""

    content: str = ""
    chunks: int = 4  # how many streamed pieces the content is split into
    status: int = 200  # non-200: answer with Ollama's {"error": ...} body instead
    error: str = ""
    delay_s: float = 0.0  # wait before answering (timeouts)
    prompt_tokens: int = 120
    completion_tokens: int | None = None  # default: the number of characters / 4
    done_reason: str = "stop"


ReplySource = str | dict[str, Any] | list[Any] | Reply | Callable[[dict[str, Any]], Any]


@dataclass
class Request:
    method: str
    path: str
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def format(self) -> Any:
        return self.body.get("format")

    @property
    def options(self) -> dict[str, Any]:
        return self.body.get("options") or {}

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages") or []


def as_reply(source: ReplySource, request: dict[str, Any]) -> Reply:
    """Normalise a canned reply: a Reply, plain text, JSON data, or a function of the request body."""
    if callable(source) and not isinstance(source, Reply):
        source = source(request)
    if isinstance(source, Reply):
        return source
    if isinstance(source, str):
        return Reply(content=source)
    return Reply(content=json.dumps(source))


def _split(text: str, n: int) -> list[str]:
    if not text or n <= 1:
        return [text]
    size = max(1, -(-len(text) // n))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakeOllama:
    """The server's state: models it has, replies still to give, requests received."""

    def __init__(self, models: tuple[str, ...] = DEFAULT_MODELS) -> None:
        self.models: list[str] = list(models)
        self.digests: dict[str, str] = {}  # model -> the digest /api/tags lists (default: 64 zeros)
        self.replies: list[ReplySource] = []
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def chat_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path == "/api/chat"]

    def start(self) -> FakeOllama:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-ollama", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def next_reply(self, body: dict[str, Any]) -> Reply | None:
        with self._lock:
            source = self.replies.pop(0) if self.replies else None
        return None if source is None else as_reply(source, body)


def _handler_for(state: FakeOllama) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            return json.loads(raw) if raw else {}

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._json(status, {"error": message})

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            state.record(Request("GET", self.path))
            if self.path == "/api/tags":
                self._json(200, {"models": [_model_entry(m, state.digests.get(m)) for m in state.models]})
            elif self.path == "/api/version":
                self._json(200, {"version": "0.12.0"})
            elif self.path == "/":
                self._plain("Ollama is running")
            else:
                self._error(404, "404 page not found")

        def do_HEAD(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:  # noqa: N802
            body = self._body()
            state.record(Request("POST", self.path, body))
            if self.path == "/api/show":
                name = body.get("model") or body.get("name") or ""
                if name not in state.models:
                    self._error(404, f"model '{name}' not found")
                else:
                    self._json(200, _show(name))
            elif self.path == "/api/chat":
                self._chat(body)
            else:
                self._error(404, "404 page not found")

        def _plain(self, text: str) -> None:
            data = text.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _chat(self, body: dict[str, Any]) -> None:
            model = body.get("model", "")
            if model not in state.models:
                # Ollama's own wording for a model that was never pulled.
                self._error(404, f'model "{model}" not found, try pulling it first')
                return
            reply = state.next_reply(body)
            if reply is None:
                self._error(500, "fake_ollama: no recorded reply left for this request")
                return
            if reply.delay_s:
                time.sleep(reply.delay_s)
            if reply.status != 200:
                self._error(reply.status, reply.error or HTTPStatus(reply.status).phrase)
                return
            if body.get("stream", True):
                self._stream(model, reply)
            else:
                self._json(200, {**_final(model, reply), "message": _message(reply.content)})

        def _stream(self, model: str, reply: Reply) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in _split(reply.content, reply.chunks):
                self._chunk({"model": model, "created_at": _now(), "message": _message(piece), "done": False})
            self._chunk({**_final(model, reply), "message": _message("")})
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _chunk(self, payload: dict[str, Any]) -> None:
            line = json.dumps(payload).encode() + b"\n"
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()

    return Handler


def _message(content: str) -> dict[str, str]:
    return {"role": "assistant", "content": content}


def _final(model: str, reply: Reply) -> dict[str, Any]:
    completion = reply.completion_tokens if reply.completion_tokens is not None else len(reply.content) // 4
    return {
        "model": model,
        "created_at": _now(),
        "done": True,
        "done_reason": reply.done_reason,
        "total_duration": 1_000_000,
        "load_duration": 100_000,
        "prompt_eval_count": reply.prompt_tokens,
        "prompt_eval_duration": 200_000,
        "eval_count": completion,
        "eval_duration": 700_000,
    }


def _model_entry(name: str, digest: str | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "model": name,
        "modified_at": "2026-01-01T00:00:00Z",
        "size": 4_683_087_332,
        "digest": digest or "0" * 64,
        "details": {
            "format": "gguf",
            "family": "qwen2",
            "parameter_size": "7.6B",
            "quantization_level": "Q4_K_M",
        },
    }


def _show(name: str) -> dict[str, Any]:
    entry = _model_entry(name)
    return {
        "modelfile": f"FROM {name}",
        "parameters": "temperature 0",
        "template": "{{ .Prompt }}",
        "details": entry["details"],
        "model_info": {},
        "capabilities": ["completion", "tools"],
        "modified_at": entry["modified_at"],
    }


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    """A running fake Ollama on a free loopback port; set `settings.ollama_url = fake_ollama.url`."""
    server = FakeOllama().start()
    yield server
    server.stop()
