"""/v1 chat semantics as Open WebUI uses them (issue 22, 23-25): Regenerate asks the model again, the history the
client sends is the truth (edits, branches), and two models in one chat keep their turns apart."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from spinbot.settings import Settings
from spinbot.store import Store
from tests.harness import InProcess
from tests.web.conftest import LiveAPI, serve
from tests.web.test_chat import diag_plan
from tests.web.test_openai_openwebui import KEY, SIGNED_PAGE, answer, content_of, read_until_job, stream_chunks

SCRIPT_PLAN = {"steps": [{"id": "script", "service": "llm.generate_script",
                          "params": {"topic": "tides", "duration_s": 8}, "inputs": {}}]}


def owui(chat: str) -> dict[str, str]:
    return {"X-OpenWebUI-Chat-Id": chat, "X-OpenWebUI-User-Id": "u1"}


@pytest.fixture
def llm_settings(api_settings: Settings, fake_ollama: Any) -> Settings:
    """One key as Open WebUI has; the scripted model plans and writes the scripts, for the API and executors."""
    return api_settings.model_copy(update={"ollama_url": fake_ollama.url, "planner_direct_plans": True,
                                           "api_keys": [KEY]})


@pytest.fixture
async def llm_api(llm_settings: Settings) -> AsyncIterator[LiveAPI]:
    async with serve(llm_settings) as live:
        yield live


@pytest.fixture
async def llm_executors(llm_settings: Settings, store: Store) -> AsyncIterator[InProcess]:
    runner = InProcess(llm_settings, store)
    await runner.both()
    await runner.ready()
    await runner.published()
    yield runner
    await runner.close()


def scripted_model(fake_ollama: Any, plan: dict[str, Any]) -> list[str]:
    """Every call answered by what it asks for: a plan, or a script whose narration differs each time (a model
    samples). Returns the narrations written, in order."""
    written: list[str] = []
    counter = itertools.count(1)

    def reply(body: dict[str, Any]) -> Any:
        props = (body.get("format") or {}).get("properties") or {}
        if "narration" in props:
            n = next(counter)
            words = " ".join(f"word{i}" for i in range(18))
            written.append(f"Take {n}: {words}.")
            return {"title": f"Tides {n}", "narration": written[-1], "stage": "a presenter by the sea"}
        return plan

    fake_ollama.replies.extend([reply] * 40)
    return written


async def job_of(api: LiveAPI, text: str) -> dict[str, Any]:
    m = SIGNED_PAGE.search(text)
    assert m is not None, text
    async with api.client(KEY) as c:
        for _ in range(300):
            job = (await c.get(f"/api/jobs/{m.group(2)}")).json()
            if job["status"] in ("completed", "failed", "cancelled"):
                return dict(job)
            await asyncio.sleep(0.1)
    raise AssertionError(f"job {m.group(2)} did not end")


def narration(job: dict[str, Any]) -> str:
    node = next(n for n in job["graph"]["nodes"] if n["service"] == "llm.generate_script")
    return str(node["output"]["narration"])


async def test_regenerate_asks_the_model_again(llm_api: LiveAPI, llm_executors: Any, fake_ollama: Any) -> None:
    """Regenerate (the same chat, the same last user message, the answer left out) writes a new script; a later
    follow-up that changes nothing in it keeps the one shown last (the regenerated script replaced the entry)."""
    written = scripted_model(fake_ollama, SCRIPT_PLAN)
    user = {"role": "user", "content": "a script about tides"}
    body = {"model": "spinbot", "messages": [user]}
    first = await job_of(llm_api, await answer(llm_api, body, owui("regen")))
    assert first["status"] == "completed" and narration(first) == written[0]
    again_text = await answer(llm_api, body, owui("regen"))  # Open WebUI's Regenerate: the same request
    again = await job_of(llm_api, again_text)
    assert again["id"] != first["id"] and again["status"] == "completed"
    assert narration(again) == written[1] != written[0], "the regenerate was answered from the node cache"
    assert again["graph"]["metadata"]["cache"] == {"regenerate": True}
    # A new message (not a regenerate) whose script is the same: reused, and it is the regenerated one.
    follow = {"model": "spinbot", "messages": [user, {"role": "assistant", "content": again_text},
                                               {"role": "user", "content": "once more please"}]}
    kept = await job_of(llm_api, await answer(llm_api, follow, owui("regen")))
    assert narration(kept) == written[1] and len(written) == 2
    assert "cache" not in kept["graph"]["metadata"]


async def test_a_plain_repeat_in_another_chat_is_not_a_regenerate(llm_api: LiveAPI, llm_executors: Any,
                                                                  fake_ollama: Any) -> None:
    """Without an earlier answer to the same point of the same chat, the script is reused as any output."""
    written = scripted_model(fake_ollama, SCRIPT_PLAN)
    body = {"model": "spinbot", "messages": [{"role": "user", "content": "a script about tides"}]}
    one = await job_of(llm_api, await answer(llm_api, body, owui("chat-a")))
    two = await job_of(llm_api, await answer(llm_api, body, owui("chat-b")))
    assert narration(one) == narration(two) == written[0] and len(written) == 1


def shown_text(answer_text: str) -> tuple[str, str]:
    """The words the speech step of a graph that spinbot-plan shows would say."""
    block = re.findall(r"```json\s*(\{.*?\})\s*```", answer_text, re.S)[-1]
    graph = json.loads(block)
    speech = next(n for n in graph["nodes"] if n["service"] == "tts.synthesize")
    return str(speech["params"]["text"]), str(speech["params"].get("voice"))


async def test_a_follow_up_on_a_branch_revises_that_branchs_plan(api_settings: Settings, executors: Any) -> None:
    """Edit a message in Open WebUI, then go back to the first branch and ask for a change: the previous plan is
    the one in the history the client sent (branch A), not the last one stored (branch B). No LLM: rules."""
    settings = api_settings.model_copy(update={"api_keys": [KEY]})
    async with serve(settings) as api:
        a = {"role": "user", "content": 'Read this aloud: "alpha words"'}
        b = {"role": "user", "content": 'Read this aloud: "beta words"'}
        on_a = await answer(api, {"model": "spinbot-plan", "messages": [a]}, owui("branches"))
        on_b = await answer(api, {"model": "spinbot-plan", "messages": [b]}, owui("branches"))  # the edit
        assert shown_text(on_a)[0] == "alpha words" and shown_text(on_b)[0] == "beta words"
        back_on_a = {"model": "spinbot-plan", "messages": [
            a, {"role": "assistant", "content": on_a},
            {"role": "user", "content": "the same, but with a male voice"}]}
        revised = await answer(api, back_on_a, owui("branches"))
    assert shown_text(revised) == ("alpha words", "male"), revised


async def test_two_models_in_one_chat_keep_their_turns_apart(api_settings: Settings, executors: Any,
                                                             fake_ollama: Any) -> None:
    """Open WebUI's multi-model chat sends one message, with one chat id, to `spinbot` and `spinbot-plan`:
    spinbot-plan plans and shows its own graph; it never answers with spinbot's job (as a Continue)."""
    fake_ollama.replies.extend([diag_plan(seconds=3.0), diag_plan(seconds=3.0)])
    settings = api_settings.model_copy(update={"ollama_url": fake_ollama.url, "planner_direct_plans": True,
                                               "api_keys": [KEY], "v1_cancel_on_disconnect": False})
    async with serve(settings) as api:
        message = [{"role": "user", "content": "a slow echo"}]
        async with api.client(KEY) as c, c.stream(
                "POST", "/v1/chat/completions", json={"model": "spinbot", "messages": message, "stream": True},
                headers=owui("two-models"), timeout=60) as resp:
            job_id = await read_until_job(resp)
        planned = content_of(await stream_chunks(api, {"model": "spinbot-plan", "messages": message},
                                                 owui("two-models")))
        assert f"/jobs/{job_id}" not in planned and "```json" in planned, planned
        assert len(fake_ollama.chat_requests) == 2  # spinbot-plan planned its own turn
        async with api.client(KEY) as c:
            assert [j["id"] for j in (await c.get("/api/jobs")).json()["items"]] == [job_id]  # it ran nothing
        # spinbot's Continue after Stop still finds spinbot's own job.
        rest = content_of(await stream_chunks(api, {"model": "spinbot", "messages": message}, owui("two-models")))
        assert f"/jobs/{job_id}?" in rest


def _msgs(*pairs: str) -> list[dict[str, Any]]:
    return [{"role": "user" if p.startswith("u:") else "assistant", "content": p[2:]} for p in pairs]


@pytest.mark.parametrize(("stored", "sent", "message", "again"), [
    (("u:M", "a:A1"), (), "M", True),  # Regenerate
    (("u:M", "a:A1", "u:M", "a:A2"), (), "M", True),  # Regenerate twice
    (("u:M", "a:A1", "u:M", "a:A2", "u:F", "a:B"), ("u:M", "a:A2"), "F", True),  # a follow-up regenerated
    (("u:M", "a:A1"), ("u:M", "a:A1"), "M", False),  # the same words sent again as a new message
    (("u:M", "a:A1"), ("u:M", "a:A1"), "F", False),  # a follow-up
    (("u:M",), (), "M", False),  # never answered (the turn failed before any answer was stored)
    (("u:M", "a:A1", "u:N", "a:B"), ("u:M", "a:A1"), "N", True),  # an edit back to words answered there
    (("u:M", "a:A1", "u:N", "a:B"), ("u:X", "a:Y"), "N", False),  # the same words after another history
])
def test_asked_again(stored: tuple[str, ...], sent: tuple[str, ...], message: str, again: bool) -> None:
    from conversation.goals import asked_again

    assert asked_again(_msgs(*stored), _msgs(*sent), message) is again
