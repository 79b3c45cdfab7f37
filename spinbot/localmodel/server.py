"""An Ollama-API server over one GGUF model (spinbot.localmodel.engine): what `spinbot up` runs when no Ollama answers.

    python -m spinbot.localmodel.server [--gguf PATH] [--name NAME] [--port 11435] [--threads 1]

Without --gguf it serves the embedded model (spinbot.localmodel.files: joined from its PyPI chunk
packages under --models-dir). It prints `listening on http://HOST:PORT` once the model is loaded
(`--port 0` picks a free port). Any Ollama client works against it; Spinbot's is langchain-ollama.

What it answers, as Ollama does: `GET /`, `GET /api/version`, `GET /api/tags`, `GET /api/ps`,
`POST /api/show`, and `POST /api/chat` (streamed NDJSON by default, one JSON object with
`"stream": false`). The final chat object carries `done_reason` ("stop" or "length"),
`total_duration`, `load_duration`, `prompt_eval_count`, `prompt_eval_duration`, `eval_count` and
`eval_duration` (nanoseconds). Honoured `options`: temperature, num_predict, num_ctx, top_k, top_p,
seed, num_keep. `format` is "json" or a JSON schema (a token mask constrains sampling). `tools` and
`think` are refused (400) as Ollama refuses them for a model without those abilities.

The context works like Ollama's: the model is loaded once with a physical context (`--n-ctx`), and
each request's `num_ctx` (default 4096) bounds its prompt: a chat that does not fit loses whole oldest
non-system messages, then tokens from the front (keeping `num_keep`), with Ollama's warning line
`msg="truncating input prompt" limit=.. prompt=.. keep=.. new=..`; `"truncate": false` answers 400.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from spinbot.localmodel.engine import Engine, EngineError, Generation, Sampling

OLLAMA_VERSION = "0.12.0"  # what /api/version claims to be
DEFAULT_NUM_CTX = 4096
NUM_KEEP = 4  # Ollama's default options.num_keep
#: Ollama's defaults for the options a request leaves out (api.DefaultOptions)
DEFAULTS = {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "seed": -1, "num_predict": -1, "num_keep": NUM_KEEP}
#: general.file_type of a GGUF -> Ollama's quantization_level
FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
              12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
              32: "BF16"}

log = logging.getLogger("spinbot.localmodel")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


class Model:
    """The served model: its engine, the name clients ask for, and what /api/tags and /api/show say of it."""

    def __init__(self, engine: Engine, name: str, digest: str, default_num_ctx: int = DEFAULT_NUM_CTX) -> None:
        self.engine, self.name, self.digest, self.default_num_ctx = engine, name, digest, default_num_ctx
        stat = engine.gguf.stat()
        self.size = stat.st_size
        self.modified_at = datetime.fromtimestamp(stat.st_mtime, UTC).isoformat().replace("+00:00", "Z")
        family = engine.meta("general.architecture") or "llama"
        n = engine.n_params
        ftype = engine.meta("general.file_type")
        size = f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"
        self.details = {
            "parent_model": "", "format": "gguf", "family": family, "families": [family],
            "parameter_size": engine.meta("general.size_label") or size,
            "quantization_level": FILE_TYPES.get(int(ftype) if ftype.isdigit() else -1, "unknown"),
        }

    def knows(self, name: str) -> bool:
        return name == self.name or (":" not in name and f"{name}:latest" == self.name)

    def entry(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.name, "modified_at": self.modified_at, "size": self.size,
                "digest": self.digest, "details": self.details}

    def chat(self, body: dict[str, Any], emit: Any) -> Generation:
        options = {**DEFAULTS, **{k: v for k, v in (body.get("options") or {}).items() if v is not None}}
        num_ctx = int(options.get("num_ctx") or self.default_num_ctx)
        if num_ctx > self.engine.n_ctx:
            log.warning('msg="requested context size too large for model" num_ctx=%d n_ctx=%d', num_ctx,
                        self.engine.n_ctx)
            num_ctx = self.engine.n_ctx
        tokens, warning = self.engine.fit(list(body.get("messages") or []), max(num_ctx, 8), int(options["num_keep"]),
                                          body.get("truncate", True) is not False)
        if warning:
            log.warning(warning)
        sampling = Sampling(temperature=float(options["temperature"]), top_k=int(options["top_k"]),
                            top_p=float(options["top_p"]), seed=int(options["seed"]),
                            num_predict=int(options["num_predict"]))
        return self.engine.chat(tokens, sampling, body.get("format"), emit)


def _handler_for(model: Model) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "spinbot-localmodel"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError as e:
                raise EngineError(400, f"invalid request body: {e}") from e
            if not isinstance(body, dict):
                raise EngineError(400, "invalid request body: expected a JSON object")
            return body

        def _send(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json; charset=utf-8")

        def _chunk(self, payload: dict[str, Any]) -> None:
            line = json.dumps(payload).encode() + b"\n"
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()

        def _name(self, body: dict[str, Any]) -> str:
            name = str(body.get("model") or body.get("name") or "")
            if not name:
                raise EngineError(400, "model is required")
            return name

        def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/":
                self._send(200, b"Ollama is running", "text/plain; charset=utf-8")
            elif self.path == "/api/version":
                self._json(200, {"version": OLLAMA_VERSION})
            elif self.path == "/api/tags":
                self._json(200, {"models": [model.entry()]})
            elif self.path == "/api/ps":
                entry = {**model.entry(), "expires_at": "2318-01-01T00:00:00Z", "size_vram": 0,
                         "context_length": model.default_num_ctx}
                entry.pop("modified_at")
                self._json(200, {"models": [entry]})
            else:
                self._send(404, b"404 page not found", "text/plain; charset=utf-8")

        def do_POST(self) -> None:  # noqa: N802
            try:
                body = self._body()
                if self.path == "/api/show":
                    self._show(body)
                elif self.path == "/api/chat":
                    self._chat(body)
                else:
                    self._send(404, b"404 page not found", "text/plain; charset=utf-8")
            except EngineError as e:
                self._json(e.status, {"error": e.message})
            except (BrokenPipeError, ConnectionResetError):
                log.info('msg="client went away" path=%s', self.path)
            except Exception as e:  # a bug here: answer as Ollama does (500 + error), keep serving
                log.exception('msg="request failed" path=%s', self.path)
                self._json(500, {"error": f"{type(e).__name__}: {e}"})

        def _show(self, body: dict[str, Any]) -> None:
            name = self._name(body)
            if not model.knows(name):
                raise EngineError(404, f"model '{name}' not found")
            e = model.engine
            self._json(200, {
                "license": e.meta("general.license") or "see the model's source",
                "modelfile": f"# Modelfile generated by spinbot.localmodel\nFROM {e.gguf}\n",
                "parameters": f"{'num_ctx':<30} {model.default_num_ctx}",
                "template": e.template_text,
                "details": model.details,
                "model_info": {"general.architecture": model.details["family"], "general.parameter_count": e.n_params,
                               "general.name": e.meta("general.name")},
                "capabilities": ["completion"],
                "modified_at": model.modified_at,
            })

        def _chat(self, body: dict[str, Any]) -> None:
            name = self._name(body)
            if not model.knows(name):
                raise EngineError(404, f'model "{name}" not found, try pulling it first')
            messages = body.get("messages")
            if messages is not None and not isinstance(messages, list):
                raise EngineError(400, "messages must be a list")
            if body.get("tools"):
                raise EngineError(400, f"{name} does not support tools")
            if body.get("think") not in (None, False):
                raise EngineError(400, f'"{name}" does not support thinking')
            if not messages:  # Ollama's answer to an empty chat: the model is loaded
                self._json(200, {"model": name, "created_at": _now(), "message": {"role": "assistant", "content": ""},
                                 "done_reason": "load", "done": True})
                return
            started = time.monotonic_ns()
            if body.get("stream", True) is False:
                gen = model.chat(body, lambda piece: None)
                self._json(200, self._final(name, gen, started, gen.text))
                self._log(name, gen, started)
                return
            headers_sent = False

            def emit(piece: str) -> None:
                nonlocal headers_sent
                if not headers_sent:
                    self._start_stream()
                    headers_sent = True
                self._chunk({"model": name, "created_at": _now(), "message": {"role": "assistant", "content": piece},
                             "done": False})

            try:
                gen = model.chat(body, emit)
            except (BrokenPipeError, ConnectionResetError):
                raise
            except Exception as e:  # once the stream has begun, Ollama reports an error as one more line
                if not headers_sent:
                    raise
                log.exception('msg="chat failed mid-stream"')
                self._chunk({"error": e.message if isinstance(e, EngineError) else str(e)})
                self._end_stream()
                return
            if not headers_sent:
                self._start_stream()
            self._chunk(self._final(name, gen, started, ""))
            self._end_stream()
            self._log(name, gen, started)

        def _start_stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

        def _end_stream(self) -> None:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _final(self, name: str, gen: Generation, started: int, content: str) -> dict[str, Any]:
            return {"model": name, "created_at": _now(), "message": {"role": "assistant", "content": content},
                    "done_reason": gen.done_reason, "done": True, "total_duration": time.monotonic_ns() - started,
                    "load_duration": 0, "prompt_eval_count": gen.prompt_tokens,
                    "prompt_eval_duration": gen.prompt_eval_ns, "eval_count": gen.eval_count,
                    "eval_duration": gen.eval_ns}

        def _log(self, name: str, gen: Generation, started: int) -> None:
            log.info('msg="chat" model=%s prompt_eval_count=%d cached=%d eval_count=%d done_reason=%s seconds=%.2f',
                     name, gen.prompt_tokens, gen.cached_tokens, gen.eval_count, gen.done_reason,
                     (time.monotonic_ns() - started) / 1e9)

    return Handler


def serve(model: Model, host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _handler_for(model))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> None:
    from spinbot.localmodel import files

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11435, help="0 picks a free port")
    parser.add_argument("--gguf", type=Path, help="default: the embedded model, joined under --models-dir")
    parser.add_argument("--models-dir", type=Path, default=Path(".spinbot/models"))
    parser.add_argument("--name", help=f"the model name clients ask for (default: {files.DEFAULT.name} for the "
                        "embedded model, else the file's stem)")
    parser.add_argument("--n-ctx", type=int, default=8192, help="the physical context (tokens)")
    parser.add_argument("--default-num-ctx", type=int, default=DEFAULT_NUM_CTX, help="num_ctx when a request has none")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: two collapse on a busy 2-core machine)")
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    args = parser.parse_args(argv)
    # Ollama's log shape: time=2025-11-02T22:57:57.174Z level=WARN source=... msg="..." key=value ...
    logging.addLevelName(logging.WARNING, "WARN")
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("time=%(asctime)s.%(msecs)03dZ level=%(levelname)s source=localmodel %(message)s",
                                  "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, handlers=[handler])
    if args.gguf is None:
        try:
            gguf = files.assemble(args.models_dir)
        except files.ModelNotInstalled as e:
            raise SystemExit(f"{e}: {e.hint}") from None
        name, digest = args.name or files.DEFAULT.name, files.DEFAULT.sha256
    else:
        gguf, name, digest = args.gguf, args.name or args.gguf.stem, _sha256(args.gguf)
    try:
        engine = Engine(gguf, n_ctx=args.n_ctx, threads=args.threads, repack=True)
    except EngineError as e:
        raise SystemExit(e.message) from None
    log.info('msg="model loaded" gguf=%s name=%s n_ctx=%d threads=%d seconds=%.2f', gguf, name, engine.n_ctx,
             engine.threads, engine.load_s)
    server = serve(Model(engine, name, f"sha256:{digest}", args.default_num_ctx), args.host, args.port)
    print(f"listening on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
