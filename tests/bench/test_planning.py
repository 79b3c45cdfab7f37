"""bench/planning.py scores a goal that needs a script step by whether an LLM can answer."""

from __future__ import annotations

from bench.planning import check

SCRIPT_GOAL = {"goal": "write a script about volcanoes", "kind": "plan", "must": ["llm.generate_script"],
               "must_not": ["video.animate_portrait"], "params": {}, "attachments": []}
SAYS_LLM_MISSING = {"kind": "plan", "graph": None, "message": "I cannot make this now: to write a script for a short "
                    "spoken video needs the LLM, and none answers now."}
SCRIPTED = {"kind": "plan", "message": "", "graph": {"nodes": [{"id": "script", "service": "llm.generate_script",
                                                                "params": {"topic": "volcanoes"}}]}}


def test_without_an_llm_a_script_goal_is_right_answered_with_the_llm_missing() -> None:
    assert check(SCRIPT_GOAL, SAYS_LLM_MISSING, llm=False) == []
    assert check(SCRIPT_GOAL, SAYS_LLM_MISSING | {"message": "I cannot make this now."}, llm=False) == [
        "no word of the LLM missing"]
    assert check(SCRIPT_GOAL, SCRIPTED, llm=False) == ["planned without the LLM it needs"]


def test_with_an_llm_a_script_goal_must_be_planned() -> None:
    assert check(SCRIPT_GOAL, SCRIPTED, llm=True) == []
    assert check(SCRIPT_GOAL, SAYS_LLM_MISSING, llm=True)[0].startswith("no graph")
