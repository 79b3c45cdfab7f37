"""One rule for text at every entry: NUL and lone surrogates in what a client sends are refused (422 naming
the field); in what a model or a task writes they are replaced; a chat stream always ends with `done`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conversation.chat import Turn, TurnRequest
from spinbot.settings import Settings
from spinbot.text import clean, clean_value, first_bad
from tests.fake_ollama import Reply
from tests.web.conftest import LiveAPI, diag_graph, echo_node, read_sse, serve, wav_bytes
from web.problems import SafeJSONResponse
from web.sse import encode

NUL, LONE = "\x00", "\ud800"


@pytest.fixture
async def llm_api(api_settings: Settings, fake_ollama) -> AsyncIterator[LiveAPI]:
    direct = {"ollama_url": fake_ollama.url, "planner_direct_plans": True}
    async with serve(api_settings.model_copy(update=direct)) as live:
        yield live


async def post_json(c: httpx.AsyncClient, path: str, body: Any) -> httpx.Response:
    """JSON as a client may send it: json.dumps writes NUL and lone surrogates as \\u escapes."""
    return await c.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


def assert_invalid_text(r: httpx.Response, field: str) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "invalid_text" and body["field"] == field, body
    assert field in body["detail"] and "surrogate" in body["hint"]
    return body


# ---- the rule itself ------------------------------------------------------------------------------


def test_first_bad_names_the_json_path() -> None:
    doc = {"model": "m", "messages": [{"role": "user", "content": "ok"},
                                      {"role": "user", "content": [{"type": "text", "text": "a" + LONE}]}]}
    bad = first_bad(doc)
    assert bad is not None and bad.field == "messages[1].content[0].text" and bad.char == "U+D800"
    assert bad.position == 1
    assert first_bad({"a": [1, 2.5, None, True, "fine \U0001f600"]}) is None
    key = first_bad({"ctx": {"k" + NUL: 1}})
    assert key is not None and key.in_key and key.field == "ctx.k\ufffd"
    assert first_bad(NUL).field == "body"  # type: ignore[union-attr]
    deep: Any = "x" + NUL
    for _ in range(5000):  # deeper than recursion allows
        deep = [deep]
    assert first_bad(deep) is not None


def test_clean_replaces_and_output_never_fails() -> None:
    assert clean("a" + NUL + LONE + "b") == "a\ufffd\ufffdb"
    assert clean_value({"k" + LONE: ["x" + NUL, 1]}) == {"k\ufffd": ["x\ufffd", 1]}
    assert b"\xef\xbf\xbd" in encode("plan", {"graph": {"text": LONE}}, "0-1")
    assert b"\xef\xbf\xbd" in encode(None, "raw " + LONE)
    assert json.loads(SafeJSONResponse({"reply": LONE}).body) == {"reply": "\ufffd"}


async def test_answers_quoting_task_output_are_cleaned_before_storing() -> None:
    stored: list[tuple[str, Any]] = []

    class Repo:
        async def add_message(self, conv: str, role: str, text: str, **kw: Any) -> dict[str, Any]:
            stored.append((text, kw.get("graph")))
            return {"id": 1}

    class Services:
        repo = Repo()

    turn = Turn(Services(), TurnRequest(owner="o", message="m"))  # type: ignore[arg-type]
    turn.result.conversation_id = "c1"
    await turn._answer("output: a" + NUL + "b" + LONE, graph={"nodes": [{"output": {"text": LONE}}]})
    assert stored == [("output: a\ufffdb\ufffd", {"nodes": [{"output": {"text": "\ufffd"}}]})]
    assert turn.queue.get_nowait().data == {"delta": "output: a\ufffdb\ufffd"}  # type: ignore[union-attr]


# ---- what clients send is refused, naming the field --------------------------------------------------


@pytest.mark.parametrize(("messages", "field"), [
    ([{"role": "user", "content": "make a video" + NUL}], "messages[0].content"),
    ([{"role": "user", "content": "hi " + LONE}], "messages[0].content"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b" + LONE},
      {"role": "user", "content": "c"}], "messages[1].content"),
    ([{"role": "user", "content": [{"type": "text", "text": "x" + NUL}]}], "messages[0].content[0].text"),
    ([{"role": "user" + NUL, "content": "x"}], "messages[0].role"),
])
async def test_v1_refuses_bad_text_in_message_or_history(api: LiveAPI, messages: list[Any], field: str) -> None:
    async with api.client() as c:
        r = await post_json(c, "/v1/chat/completions", {"model": "spinbot", "messages": messages})
    body = assert_invalid_text(r, field)
    assert body["error"]["param"] == field and body["error"]["type"] == "invalid_request_error"


async def test_native_routes_refuse_bad_text(api: LiveAPI) -> None:
    async with api.client() as c:
        assert_invalid_text(await post_json(c, "/api/chat", {"message": "make" + NUL}), "message")
        assert_invalid_text(await post_json(c, "/api/chat", {"message": "x", "attachments": [
            {"name": "a" + LONE + ".png", "data": "data:image/png;base64,AAAA"}]}), "attachments[0].name")
        assert_invalid_text(await post_json(c, "/api/plan", {"goal": LONE}), "goal")
        graph = diag_graph(echo_node("e", text="hi" + NUL))
        assert_invalid_text(await post_json(c, "/api/jobs", {"graph": graph}), "graph.nodes[0].params.text")
        assert_invalid_text(await post_json(c, "/api/evaluate", {"graph": {"k" + NUL: 1}}), "graph.k\ufffd")
        # Paired surrogates are one character: fine.
        ok = await post_json(c, "/api/evaluate", {"graph": diag_graph(echo_node("e", text="tides \U0001f30a"))})
        assert ok.status_code == 200, ok.text
        # A JSON body sent without a content type is parsed as JSON: checked too.
        r = await c.post("/api/plan", content=json.dumps({"goal": NUL}))
        assert_invalid_text(r, "goal")


async def test_multipart_fields_and_file_names_are_checked(api: LiveAPI) -> None:
    async with api.client() as c:
        r = await c.post("/api/chat", files={"message": (None, "hello" + NUL)})  # multipart without files
        assert_invalid_text(r, "message")
        body, ctype = multipart_with_raw_name(b"clip\x00.wav")
        r = await c.post("/api/uploads", content=body, headers={"content-type": ctype})
        assert_invalid_text(r, "files[0].filename")
        body, ctype = multipart_with_raw_name(b"a.wav", ctype=b"audio/wav\x00", message=b"hi")
        r = await c.post("/api/chat", content=body, headers={"content-type": ctype})
        assert_invalid_text(r, "files[0].content_type")


def multipart_with_raw_name(name: bytes, ctype: bytes = b"audio/wav", message: bytes | None = None) -> tuple[bytes,
                                                                                                            str]:
    """A multipart body written by hand: httpx would escape a NUL in a file name as %00."""
    b = b"XyZbOuNdArY"
    parts = []
    if message is not None:
        parts.append(b'--' + b + b'\r\nContent-Disposition: form-data; name="message"\r\n\r\n' + message + b"\r\n")
    parts.append(b"--" + b + b'\r\nContent-Disposition: form-data; name="files"; filename="' + name
                 + b'"\r\nContent-Type: ' + ctype + b"\r\n\r\n" + wav_bytes() + b"\r\n")
    return b"".join(parts) + b"--" + b + b"--\r\n", f"multipart/form-data; boundary={b.decode()}"


async def test_paths_and_queries_are_checked(api: LiveAPI) -> None:
    async with api.client() as c:
        assert_invalid_text(await c.get("/api/conversations/c%00x"), "path")
        assert_invalid_text(await c.get("/api/artifacts/uploads/local/a%00/x.png"), "path")
        assert_invalid_text(await c.get("/api/jobs", params={"before": "x" + NUL}), "query.before")
        assert_invalid_text(await c.get("/v1/models%00"), "path")


# ---- what models and tasks write is cleaned, and streams always end ---------------------------------


def surrogate_plan() -> Reply:
    """A model answer whose JSON holds a lone surrogate escape."""
    return Reply('{"steps": [{"id": "say", "service": "diag.echo", "params": {"text": "tides \\ud800 waves"}, '
                 '"inputs": {}}]}')


async def test_plan_with_a_surrogate_from_the_llm_is_not_a_500(llm_api: LiveAPI, executors, fake_ollama) -> None:
    fake_ollama.replies.append(surrogate_plan())
    async with llm_api.client() as c:
        r = await c.post("/api/plan", json={"goal": "make an echo about tides"})
    assert r.status_code == 200, r.text  # a clear 4xx would do; never a 500
    node = r.json()["graph"]["nodes"][0]
    assert node["params"]["text"] == "tides \ufffd waves"  # the model's lone surrogate, replaced


async def test_chat_with_a_surrogate_from_the_llm_ends_with_done(llm_api: LiveAPI, executors, fake_ollama) -> None:
    fake_ollama.replies.append(surrogate_plan())
    async with llm_api.client() as c, c.stream("POST", "/api/chat", json={"message": "make an echo about tides"}) \
            as resp:
        assert resp.status_code == 200
        events = await read_sse(resp)
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "done" and "message" in kinds, kinds
    conv = events[0]["data"]["id"]
    async with llm_api.client() as c:
        stored = (await c.get(f"/api/conversations/{conv}")).json()
    assert stored["messages"][-1]["role"] == "assistant"


async def test_a_turn_that_raises_still_ends_with_error_and_done(llm_api: LiveAPI, monkeypatch) -> None:
    async def broken(*a: Any, **kw: Any) -> Any:
        raise RuntimeError("planner exploded")

    monkeypatch.setattr("conversation.chat.plan_goal", broken)
    async with llm_api.client() as c:
        async with c.stream("POST", "/api/chat", json={"message": "make a video"}) as resp:
            events = await read_sse(resp)
        kinds = [e["event"] for e in events]
        assert kinds[-1] == "done" and kinds.index("error") < kinds.index("message"), kinds
        answer = "".join(e["data"]["delta"] for e in events if e["event"] == "message")
        assert "could not" in answer and events[-1]["data"]["error"]["code"] == "internal"
        # The same turn through /v1: an answer with content, never an empty 200.
        r = await c.post("/v1/chat/completions", json={"model": "spinbot",
                                                       "messages": [{"role": "user", "content": "make a video"}]})
        assert r.status_code == 200 and "could not" in r.json()["choices"][0]["message"]["content"]
        body = {"model": "spinbot", "stream": True, "messages": [{"role": "user", "content": "make a video"}]}
        async with c.stream("POST", "/v1/chat/completions", json=body) as resp:
            raw = (await resp.aread()).decode()
    chunks = [json.loads(ln[6:]) for ln in raw.splitlines() if ln.startswith("data: {")]
    content = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if ch["choices"])
    assert "could not" in content and raw.rstrip().endswith("data: [DONE]")


async def test_a_turn_whose_answer_cannot_be_stored_still_ends(llm_api: LiveAPI, monkeypatch) -> None:
    async def broken(*a: Any, **kw: Any) -> Any:
        raise RuntimeError("planner exploded")

    async def unstorable(*a: Any, **kw: Any) -> Any:
        raise OSError("the store is gone")

    monkeypatch.setattr("conversation.chat.plan_goal", broken)
    async with llm_api.client() as c:
        monkeypatch.setattr(llm_api.services.repo, "add_message", unstorable)
        async with c.stream("POST", "/api/chat", json={"message": "make a video"}) as resp:
            events = await read_sse(resp)
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "done" and "error" in kinds, kinds


async def test_the_sse_stream_ends_with_done_even_if_reading_breaks() -> None:
    from web.routes.chat import ending

    class Broken:
        class result:  # noqa: N801 (a stand-in for TurnResult)
            conversation_id, job_id, status, error = "c1", None, None, None

        async def events(self, idle_s: float | None = None) -> AsyncIterator[Any]:
            from conversation.chat import ChatEvent

            yield ChatEvent("conversation", {"id": "c1"}, "0-1")
            raise RuntimeError("boom")

    out = [x async for x in ending(Broken(), 1.0)]  # type: ignore[arg-type]
    assert [x.split(b"\n")[0] for x in out if x] == [b"id: 0-1", b"event: error", b"event: done"]
