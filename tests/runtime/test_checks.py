"""Checks declared by services run on their outputs (executors/checking.py), on real Redis and Postgres."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from executors import checking
from spinbot.checks import Check, find
from spinbot.queue import JobQueue
from spinbot.registry import service
from spinbot.store import Store
from spinbot.task import TaskContext
from tests.runtime.conftest import InProcess, all_events, graph, wait_terminal


class TextParams(BaseModel):
    text: str
    least: int = 10


async def count_words(ctx: TaskContext, p: TextParams, out: dict[str, Any]) -> list[Check]:
    n = len(out["text"].split())
    return [Check("word_count", n, "words", n >= p.least, f"{n} words, at least {p.least} wanted")]


def repeat(p: TextParams, found: list[Check]) -> tuple[dict[str, Any], str] | None:
    c = find(found, "word_count")
    return ({"text": f"{p.text} {p.text} {p.text}"}, "too few words: saying it three times") if c and not c.ok else None


@service("test.say", planes=["gpu"], description="returns its text", params=TextParams, inputs={"text": "text"},
         outputs={"text": "text"}, checks=count_words, measures=("word_count",), refine=repeat)
async def say_service(ctx: TaskContext, p: TextParams) -> dict[str, Any]:
    return {"text": p.text}


async def broken(ctx: TaskContext, p: TextParams, out: dict[str, Any]) -> list[Check]:
    raise RuntimeError("the recogniser crashed")


@service("test.broken_check", planes=["gpu"], description="returns its text; its checker raises",
         params=TextParams, outputs={"text": "text"}, checks=broken)
async def broken_service(ctx: TaskContext, p: TextParams) -> dict[str, Any]:
    return {"text": p.text}


async def slow(ctx: TaskContext, p: TextParams, out: dict[str, Any]) -> list[Check]:
    await asyncio.sleep(30)
    return []


@service("test.slow_check", planes=["gpu"], description="returns its text; its checker hangs",
         params=TextParams, outputs={"text": "text"}, checks=slow)
async def slow_service(ctx: TaskContext, p: TextParams) -> dict[str, Any]:
    return {"text": p.text}


def node(id: str, svc: str, **params: Any) -> dict[str, Any]:
    return {"id": id, "service": svc, "plane": "gpu", "params": params}


async def node_output_in_postgres(store: Store, job: str, node_id: str) -> dict[str, Any]:
    for _ in range(100):  # the events reach Postgres a moment after the finish
        last = await store.last_node_events(job)
        if last.get(node_id, {}).get("status") == "completed":
            return dict(last[node_id]["output"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"node {node_id} of job {job} was not recorded in Postgres")


async def test_checks_are_recorded_on_the_node_and_in_postgres(inproc: InProcess, queue: JobQueue,
                                                                store: Store) -> None:
    await inproc.start("gpu", services=[say_service])
    job = await queue.submit(graph([node("s", "test.say", text="one two three four five six seven eight nine ten",
                                         least=5)]), owner="t")
    st = await wait_terminal(queue, job)
    assert st.status == "completed", st.error
    out = st.graph["nodes"][0]["output"]
    assert out["checks"] == [{"name": "word_count", "value": 10, "unit": "words", "ok": True,
                              "detail": "10 words, at least 5 wanted"}]
    assert "refined" not in out and out["checks_s"] >= 0
    assert (await node_output_in_postgres(store, job, "s"))["checks"] == out["checks"]
    logs = [e.data["message"] for e in await all_events(queue, job) if e.type == "log"]
    assert "checks: word_count 10 words ok" in logs


async def test_a_miss_with_a_cheaper_fix_runs_once_more_and_keeps_the_first_checks(inproc: InProcess,
                                                                                  queue: JobQueue) -> None:
    await inproc.start("gpu", services=[say_service])
    job = await queue.submit(graph([node("s", "test.say", text="too short", least=5)]), owner="t")
    st = await wait_terminal(queue, job)
    out = st.graph["nodes"][0]["output"]
    assert out["text"] == "too short too short too short"
    assert [(c["name"], c["value"], c["ok"]) for c in out["checks"]] == [("word_count", 6, True)]
    assert out["refined"]["why"] == "too few words: saying it three times"
    assert out["refined"]["first"][0]["value"] == 2 and out["refined"]["first"][0]["ok"] is False
    assert st.graph["nodes"][0]["params"]["text"] == "too short"  # the graph keeps what was planned

    # once only: a fix that does not fix it is not tried again
    job = await queue.submit(graph([node("s", "test.say", text="one", least=50)]), owner="t")
    out = (await wait_terminal(queue, job)).graph["nodes"][0]["output"]
    assert out["text"] == "one one one" and out["checks"][0]["ok"] is False


async def test_a_check_that_fails_never_fails_the_node(inproc: InProcess, queue: JobQueue,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checking, "CHECK_TIMEOUT_S", 0.2)
    await inproc.start("gpu", services=[broken_service, slow_service])
    g = graph([node("b", "test.broken_check", text="hi"), node("w", "test.slow_check", text="hi")])
    job = await queue.submit(g, owner="t")
    st = await wait_terminal(queue, job)
    assert st.status == "completed", st.error
    nodes = {n["id"]: n for n in st.graph["nodes"]}
    assert nodes["b"]["output"]["checks"] == [{"name": "checks", "value": None, "ok": None,
                                               "not_checked": "RuntimeError: the recogniser crashed"}]
    assert nodes["w"]["output"]["checks"][0]["not_checked"] == "measuring took longer than 0.2 s"
