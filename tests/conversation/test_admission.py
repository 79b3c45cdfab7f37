"""A planned chat graph is evaluated once: the planner judges it with admission's check, and admit takes that
verdict (conversation.goals.plan_goal, conversation.admission.admit)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

import conversation.admission
import planner.agent
from tests.web.conftest import LiveAPI, read_sse


async def test_a_chat_turn_evaluates_its_plan_once(api: LiveAPI, executors: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    judged: Counter[str] = Counter()

    def counting(evaluate: Any) -> Any:
        def run(graph: Any, *args: Any, **kwargs: Any) -> Any:
            judged[graph["workflowId"] if isinstance(graph, dict) else graph.workflow_id] += 1
            return evaluate(graph, *args, **kwargs)

        return run

    monkeypatch.setattr(conversation.admission, "run_evaluator", counting(conversation.admission.run_evaluator))
    monkeypatch.setattr(planner.agent, "evaluate", counting(planner.agent.evaluate))
    async with api.client() as c, c.stream("POST", "/api/chat", json={"message": "read this aloud: hello"}) as r:
        events = await read_sse(r)
    plan = next(e for e in events if e["event"] == "plan")["data"]
    assert plan["evaluation"]["ok"] is True and events[-1]["data"]["job_id"]
    assert judged == {plan["graph"]["workflowId"]: 1}
