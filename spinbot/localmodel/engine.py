"""One GGUF model on llama.cpp (the ik_llama.cpp wheel), with JSON-schema-constrained sampling (llguidance).

Why these two: `ik-llama-cpp-python` is a prebuilt manylinux wheel (25 MB, installs in seconds; the
upstream `llama-cpp-python` compiles for 16-22 min on 2 cores), and `llguidance` turns any JSON schema
into a token mask (the library upstream llama.cpp uses for the same job). The wheel's own generate loop
clears the KV cache on every call and builds its candidate list in Python; this engine keeps the KV
cache between calls (a prompt that starts like the last one evaluates only the new tokens: the
planner's ~500-token system prompt is evaluated once) and samples with numpy.

One request generates at a time (`lock`); the server around it queues the rest.
"""

from __future__ import annotations

import codecs
import ctypes
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: ChatML, for a GGUF without a chat template (Qwen2.5 and SmolLM2 both ship one).
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAMA_TOKEN_ATTR_CONTROL = 1 << 3


class EngineError(Exception):
    """A request the engine cannot serve; `status` is the HTTP status Ollama would answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Generation:
    """What one chat produced: token counts, Ollama's done_reason ("stop" | "length"), durations in ns."""

    prompt_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, found in the KV cache (not evaluated again)
    eval_count: int = 0
    done_reason: str = "stop"
    prompt_eval_ns: int = 0
    eval_ns: int = 0
    text: str = ""


@dataclass(frozen=True)
class Sampling:
    """Ollama's sampling options that this engine honours."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    seed: int = -1
    num_predict: int = -1


def _bind(lib: Any, name: str, argtypes: list[Any], restype: Any) -> Any:
    fn = getattr(lib, name)
    fn.argtypes, fn.restype = argtypes, restype
    return fn


class Engine:
    """A loaded GGUF: tokenizer, chat template, a KV cache of `n_ctx` tokens, `threads` CPU threads.

    Raises EngineError(500) when the file cannot be loaded (not a GGUF, an architecture the runtime
    does not know, not enough memory).
    """

    def __init__(
        self, gguf: Path, *, n_ctx: int = 8192, threads: int = 1, repack: bool = False, flash_attn: bool = False
    ) -> None:
        from ik_llama_cpp import _ctypes_api as C

        started = time.monotonic()
        self.C = C
        self.gguf = gguf
        C.llama_backend_init()
        mparams = C.llama_model_default_params()
        mparams.use_mmap = True
        mparams.repack_tensors = repack  # llama.cpp's run-time repacking: faster CPU matmuls, more resident memory
        model = C.llama_model_load_from_file(str(gguf).encode(), mparams)
        if not model:
            raise EngineError(500, f"cannot load {gguf}: not a GGUF model this runtime knows (see its log above)")
        cparams = C.llama_context_default_params()
        cparams.n_ctx, cparams.n_batch, cparams.n_ubatch = n_ctx, 512, 512
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.flash_attn = flash_attn
        ctx = C.llama_init_from_model(model, cparams)
        if not ctx:
            C.llama_free_model(model)
            raise EngineError(500, f"cannot make a {n_ctx}-token context for {gguf} (memory?)")
        self.model, self.ctx = model, ctx
        self.n_ubatch = int(C.llama_n_ubatch(ctx))
        lib = C._lib
        self._seq_rm = _bind(lib, "llama_kv_cache_seq_rm", [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32,
                                                            ctypes.c_int32], ctypes.c_bool)
        self._attr = _bind(lib, "llama_token_get_attr", [ctypes.c_void_p, ctypes.c_int32], ctypes.c_int)
        self._eos = _bind(lib, "llama_token_eos", [ctypes.c_void_p], ctypes.c_int32)
        self._bos = _bind(lib, "llama_token_bos", [ctypes.c_void_p], ctypes.c_int32)
        self._meta = _bind(lib, "llama_model_meta_val_str", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                                             ctypes.c_size_t], ctypes.c_int32)
        self._n_params = _bind(lib, "llama_model_n_params", [ctypes.c_void_p], ctypes.c_uint64)
        self.n_ctx = n_ctx
        self.threads = threads
        self.n_vocab = int(_bind(lib, "llama_n_vocab", [ctypes.c_void_p], ctypes.c_int32)(model))
        self.lock = threading.Lock()
        self.cached: list[int] = []  # the tokens whose keys and values are in the KV cache, in order
        self.eos = int(self._eos(model))
        bos = int(self._bos(model))
        self.pieces = [self._piece(t) for t in range(self.n_vocab)]
        self.bos_text = self.pieces[bos].decode("utf-8", "replace") if bos >= 0 else ""
        self.eos_text = self.pieces[self.eos].decode("utf-8", "replace") if self.eos >= 0 else ""
        self.add_bos = self.meta("tokenizer.ggml.add_bos_token") == "true"
        self.template_text = self.meta("tokenizer.chat_template") or CHATML
        self.end_ids = {t for t in range(self.n_vocab) if self._is_eog(t)}
        self._template = _compile_template(self.template_text)
        self._lltok: Any = None
        self.n_params = int(self._n_params(model))
        self.load_s = time.monotonic() - started

    # -- model facts -------------------------------------------------------------------------------

    def meta(self, key: str) -> str:
        """A GGUF metadata value as text ("" when the key is absent)."""
        buf = ctypes.create_string_buffer(1 << 16)
        n = self._meta(self.model, key.encode(), buf, len(buf))
        return buf.raw[:n].decode("utf-8", "replace") if n >= 0 else ""

    def _piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = self.C.llama_token_to_piece(self.model, token, buf, len(buf), 0, True)
        return buf.raw[:n] if n > 0 else b""

    def _is_eog(self, token: int) -> bool:
        return bool(self.C.llama_token_is_eog(self.model, token))

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        n = self.C.llama_tokenize(self.model, data, len(data), None, 0, add_bos, special)
        buf = (self.C.llama_token * abs(n))()
        n = self.C.llama_tokenize(self.model, data, len(data), buf, abs(n), add_bos, special)
        return list(buf[:n])

    # -- prompts -----------------------------------------------------------------------------------

    def render(self, messages: list[dict[str, Any]]) -> list[int]:
        """The chat template applied to `messages` (with the assistant's turn opened), as tokens."""
        msgs = [{"role": m.get("role", "user"), "content": m.get("content") or ""} for m in messages]
        prompt = self._template.render(messages=msgs, add_generation_prompt=True, bos_token=self.bos_text,
                                       eos_token=self.eos_text)
        add_bos = self.add_bos and not (self.bos_text and prompt.startswith(self.bos_text))
        return self.tokenize(prompt, add_bos=add_bos)

    def fit(self, messages: list[dict[str, Any]], num_ctx: int, num_keep: int, truncate: bool) -> tuple[list[int], str]:
        """Ollama's chatPrompt (drop whole oldest non-system messages) then its runner (cut tokens from the front).

        Returns the tokens and a warning line ("" when nothing was cut); raises EngineError(400) when the
        prompt does not fit and `truncate` is false.
        """
        last = len(messages) - 1
        tokens: list[int] = []
        for i in range(len(messages)):
            system = [m for m in messages[:i] if m.get("role") == "system"]
            tokens = self.render(system + messages[i:])
            if len(tokens) <= num_ctx or i == last or not truncate:
                break
        if len(tokens) <= num_ctx:
            return tokens, ""
        if not truncate:
            raise EngineError(400, "the input length exceeds the context length")
        keep = min(num_keep + (1 if self.add_bos else 0), num_ctx - 1)
        new = tokens[:keep] + tokens[keep + len(tokens) - num_ctx :]
        warning = f'msg="truncating input prompt" limit={num_ctx} prompt={len(tokens)} keep={keep} new={len(new)}'
        return new, warning

    # -- constraints -------------------------------------------------------------------------------

    def matcher(self, fmt: Any) -> Any:
        """An llguidance matcher for Ollama's `format` ("json" or a JSON schema), None for no format.

        Raises EngineError(400) for a format that is neither, or a schema llguidance refuses.
        """
        import json

        import llguidance

        if fmt in (None, ""):
            return None
        schema: dict[str, Any]
        if fmt == "json":
            schema = {"type": "object"}
        elif isinstance(fmt, dict):
            schema = dict(fmt)
        else:
            raise EngineError(400, f'invalid format: {json.dumps(fmt)}; expected "json" or a valid JSON Schema')
        # Compact JSON (", " and ": ", no newlines): every whitespace token is one the model must generate.
        schema.setdefault("x-guidance", {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "})
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema))
        except (ValueError, RuntimeError) as e:
            raise EngineError(400, f"invalid JSON schema in format: {e}") from e
        m = llguidance.LLMatcher(self._tokenizer(), grammar, log_level=0)
        if m.is_error():
            raise EngineError(400, f"invalid JSON schema in format: {m.get_error()}")
        return m

    def _tokenizer(self) -> Any:
        """llguidance's view of the vocabulary (built once, ~1 s): control tokens marked with a 0xFF byte."""
        if self._lltok is None:
            import llguidance

            model = self.model
            tokens = [b"\xff" + p if self._attr(model, t) & LLAMA_TOKEN_ATTR_CONTROL else p
                      for t, p in enumerate(self.pieces)]
            engine = self

            class Vocab:
                eos_token_id = self.eos
                bos_token_id = None
                special_token_ids: list[int] = []

                def __init__(self) -> None:
                    self.tokens = tokens

                def __call__(self, s: bytes) -> list[int]:
                    return engine.tokenize(s.decode("utf-8", "replace"), special=False)

            self._lltok = llguidance.LLTokenizer(llguidance.TokenizerWrapper(Vocab()), n_vocab=self.n_vocab,
                                                 eos_token=sorted(self.end_ids) or [self.eos])
        return self._lltok

    # -- generation --------------------------------------------------------------------------------

    def _decode(self, tokens: list[int], start: int) -> None:
        """Evaluate `tokens` at positions start.. (in micro-batches), logits for the last one."""
        from ik_llama_cpp._internals import make_batch_range

        step = self.n_ubatch
        for i in range(0, len(tokens), step):
            chunk = tokens[i : i + step]
            batch = make_batch_range(chunk, pos_start=start + i, logits_last=i + step >= len(tokens))
            try:
                ret = self.C.llama_decode(self.ctx, batch)
            finally:
                self.C.llama_batch_free(batch)
            if ret != 0:
                self.cached = self.cached[: start + i]
                raise EngineError(500, f"llama_decode failed ({ret}) at position {start + i}")
            self.cached.extend(chunk)

    def _prefill(self, tokens: list[int]) -> int:
        """Make the KV cache hold exactly `tokens`, reusing the common prefix; returns the tokens reused."""
        same = 0
        for a, b in zip(self.cached, tokens, strict=False):
            if a != b:
                break
            same += 1
        same = min(same, len(tokens) - 1)  # evaluate at least one token: its logits start the answer
        self._seq_rm(self.ctx, 0, same, -1)
        self.cached = self.cached[:same]
        self._decode(tokens[same:], same)
        return same

    def _logits(self) -> np.ndarray:
        ptr = self.C.llama_get_logits_ith(self.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float32)

    def generate(
        self, tokens: list[int], sampling: Sampling, fmt: Any, limit: int, gen: Generation | None = None
    ) -> Generator[int, None, None]:
        """Tokens of the answer to the prompt `tokens`, at most `limit`; stops at an end-of-generation token.

        Call with the lock held; the caller closes the iterator when it stops early.
        """
        matcher = self.matcher(fmt)
        rng = np.random.default_rng(None if sampling.seed < 0 else sampling.seed)
        reused = self._prefill(tokens)
        if gen is not None:
            gen.cached_tokens = reused
        made = 0
        while made < limit:
            logits = self._logits()
            if matcher is not None:
                if matcher.is_stopped():
                    return
                allowed = np.unpackbits(np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8), bitorder="little")
                logits[allowed[: self.n_vocab] == 0] = -np.inf
            token = _sample(logits, sampling, rng)
            if token in self.end_ids:
                return
            step = [token]
            if matcher is not None:
                if not matcher.consume_token(token):
                    raise EngineError(500, f"the grammar refused token {token}: {matcher.get_error()}")
                # What the grammar forces next (a key, its quotes and colon) is evaluated in one batch,
                # several times cheaper per token than sampling each.
                forced = matcher.compute_ff_tokens()[: max(0, limit - made - 1)]
                if forced and matcher.consume_tokens(forced):
                    step += forced
            yield from step
            made += len(step)
            if len(self.cached) + len(step) > self.n_ctx:
                return
            self._decode(step, len(self.cached))


    def chat(self, tokens: list[int], sampling: Sampling, fmt: Any, emit: Callable[[str], None]) -> Generation:
        """Answer the prompt `tokens`, calling `emit` with each piece of text as it is decoded.

        Raises EngineError (400 for a bad `format`, 500 when llama.cpp fails).
        """
        with self.lock:
            gen = Generation(prompt_tokens=len(tokens))
            room = self.n_ctx - len(tokens)
            limit = room if sampling.num_predict < 0 else min(sampling.num_predict, room)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            started = first = time.monotonic_ns()
            stream = self.generate(tokens, sampling, fmt, limit, gen)
            try:
                for token in stream:
                    if gen.eval_count == 0:
                        first = time.monotonic_ns()
                    gen.eval_count += 1
                    piece = decoder.decode(self.pieces[token])
                    gen.text += piece
                    if piece:
                        emit(piece)
            finally:
                stream.close()
            gen.done_reason = "length" if gen.eval_count >= limit else "stop"
            tail = decoder.decode(b"", final=True)
            if tail:
                gen.text += tail
                emit(tail)
            if gen.eval_count == 0:
                first = time.monotonic_ns()
            gen.prompt_eval_ns = first - started
            gen.eval_ns = time.monotonic_ns() - first
        return gen


def _sample(logits: np.ndarray, s: Sampling, rng: np.random.Generator) -> int:
    """Greedy at temperature 0, else top-k, top-p and temperature as Ollama applies them."""
    if s.temperature <= 0:
        return int(np.argmax(logits))
    k = min(s.top_k if s.top_k > 0 else logits.size, logits.size)
    top = np.argpartition(-logits, k - 1)[:k]
    top = top[np.argsort(-logits[top])]
    z = logits[top] / s.temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    if 0 < s.top_p < 1:
        keep = int(np.searchsorted(np.cumsum(p), s.top_p) + 1)
        top, p = top[:keep], p[:keep] / p[:keep].sum()
    return int(rng.choice(top, p=p))


def _compile_template(text: str) -> Any:
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(text)

