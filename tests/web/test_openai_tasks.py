"""Open WebUI's own task requests (title, tags, follow-ups, ...): classified on the task line, answered by the
model when one answers, by rule otherwise; a goal that merely looks like a task is planned."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from spinbot.settings import Settings
from tests.web.conftest import LiveAPI, serve
from web.v1_tasks import rule_title, task_kind, task_line

# Open WebUI 0.12.4's default templates (open_webui/config.py), filled in as it sends them.
TITLE = """### Task:
Generate a concise title summarizing the chat history.
### Guidelines:
- Keep it short: 2-4 words is best.
### Output:
JSON format: { "title": "your concise title here" }
### Examples:
- { "title": "Stock Trends" },
### Chat History:
<chat_history>
USER: {user}
ASSISTANT: Done: 3 steps ran.
</chat_history>"""
TAGS = """### Task:
Generate 1-3 broad tags categorizing the main themes of the chat history, along with 1-3 more specific subtopic tags.

### Guidelines:
- If content is too short (less than 3 messages) or too diverse, use only ["General"]

### Output:
JSON format: { "tags": ["tag1", "tag2", "tag3"] }

### Chat History:
<chat_history>
USER: {user}
ASSISTANT: Done
</chat_history>"""
FOLLOW_UPS = """### Task:
Predict 3-5 useful messages this user might naturally send next to advance their current objective.
### Guidelines:
- Write from the user's point of view, directed to the assistant.
### Output:
JSON format: { "follow_ups": ["Suggested next message 1", "Suggested next message 2", "Suggested next message 3"] }
### Chat History:
<chat_history>
USER: {user}
ASSISTANT: Done
</chat_history>"""
QUERIES = """### Task:
Analyze the chat history to determine the necessity of generating search queries, in the given language.
### Output:
Strictly return in JSON format: { "queries": ["query1", "query2"] }
### Chat History:
<chat_history>
USER: {user}
</chat_history>"""
AUTOCOMPLETE = """### Task:
You are an autocompletion system. Continue the text in `<text>` based on the **completion type** in `<type>`.
### Output Rules:
- If unsure, return: `{ "text": "" }`.
<type>General</type>
<text>{user}</text>"""
# A custom template or an older Open WebUI: no heading, plain-text answer.
OLD_TITLE = ("Create a concise, 3-5 word title with an emoji as a title for the chat history, in the given language. "
             "RESPOND ONLY WITH THE TITLE TEXT.\n\nChat History:\n<chat_history>\nUSER: {user}\n</chat_history>")
GOAL = "a 20-second talking head explaining how solar panels work, female voice"


def fill(template: str, user: str = GOAL) -> str:
    return template.replace("{user}", user)


@pytest.mark.parametrize(("prompt", "kind"), [
    (fill(TITLE), "title"), (fill(TAGS), "tags"), (fill(FOLLOW_UPS), "follow_ups"), (fill(QUERIES), "queries"),
    (fill(AUTOCOMPLETE), "text"), (fill(OLD_TITLE), "title"),
    # The history inside may say anything: a tags or follow-up request about a chat on titles stays one.
    (fill(TAGS, "make a title card that says Generate a concise title"), "tags"),
    (fill(FOLLOW_UPS, "give the video a title and tags"), "follow_ups"),
    (fill(TITLE, "suggest tags and follow-up questions"), "title"),
    # Goals are goals, whatever their shape.
    ("### Task:\nMake a 20-second talking head about tides, female voice", None),
    ("### Task:\nMake a video with a title card about tags", None),
    ("Create a video with a title card saying hello", None),
    ("make a title sequence for my podcast, 10 seconds", None),
    (GOAL, None),
])
def test_task_kind_reads_only_the_task_line(prompt: str, kind: str | None) -> None:
    assert task_kind(prompt) == kind


def test_task_line_stops_before_the_history() -> None:
    assert task_line(fill(TAGS, "title title title")).startswith("Generate 1-3 broad tags")
    assert "title" not in task_line(fill(TAGS, "title title title"))


def test_rule_title_is_short() -> None:
    assert rule_title(f"USER: {GOAL}\nASSISTANT: Done") == "20-second talking head explaining how"
    assert rule_title("USER: please make a video about tides") == "Video about tides"
    assert rule_title("") == "Spinbot chat"
    assert len(rule_title("USER: " + " ".join(["word"] * 40)).split()) <= 5


@pytest.fixture
async def rules_api(api_settings: Settings) -> AsyncIterator[LiveAPI]:
    async with serve(api_settings) as live:  # no LLM: nothing listens at its Ollama URL
        yield live


@pytest.fixture
async def llm_api(api_settings: Settings, fake_ollama: Any) -> AsyncIterator[LiveAPI]:
    async with serve(api_settings.model_copy(update={"ollama_url": fake_ollama.url})) as live:
        yield live


async def quick(api: LiveAPI, prompt: str) -> str:
    async with api.client() as c:
        r = await c.post("/v1/chat/completions", json={"model": "spinbot", "stream": False,
                                                       "messages": [{"role": "user", "content": prompt}]})
        assert r.status_code == 200, r.text
        assert (await c.get("/api/jobs")).json()["items"] == []  # a task never starts a job
    return str(r.json()["choices"][0]["message"]["content"])


async def test_without_an_llm_a_title_by_rule_and_empty_lists(rules_api: LiveAPI) -> None:
    assert json.loads(await quick(rules_api, fill(TITLE))) == {"title": "20-second talking head explaining how"}
    assert await quick(rules_api, fill(OLD_TITLE)) == "20-second talking head explaining how"  # plain text asked
    assert json.loads(await quick(rules_api, fill(TAGS, "make a title card"))) == {"tags": []}
    assert json.loads(await quick(rules_api, fill(FOLLOW_UPS))) == {"follow_ups": []}
    assert json.loads(await quick(rules_api, fill(QUERIES))) == {"queries": []}
    assert json.loads(await quick(rules_api, fill(AUTOCOMPLETE))) == {"text": ""}


async def test_with_an_llm_the_model_answers_with_a_tight_schema(llm_api: LiveAPI, fake_ollama: Any) -> None:
    fake_ollama.replies += [
        {"title": "Solar Panel Talking Head Explainer Video Today"},
        {"tags": ["Video", "Energy", "Video"]},
        {"follow_ups": ["Make it 30 seconds", "Use a male voice", "Add a picture of a roof"]},
    ]
    assert json.loads(await quick(llm_api, fill(TITLE))) == {"title": "Solar Panel Talking Head Explainer"}
    assert json.loads(await quick(llm_api, fill(TAGS))) == {"tags": ["Video", "Energy"]}
    assert json.loads(await quick(llm_api, fill(FOLLOW_UPS))) == {
        "follow_ups": ["Make it 30 seconds", "Use a male voice", "Add a picture of a roof"]}
    asked = fake_ollama.chat_requests
    assert len(asked) == 3
    for request, key in zip(asked, ("title", "tags", "follow_ups"), strict=True):
        schema = request.format
        assert schema["required"] == [key] and schema["additionalProperties"] is False
        prop = schema["properties"][key]
        assert "maxLength" in prop or ("maxItems" in prop and "maxLength" in prop["items"])
        assert request.options["num_predict"] <= 200
        assert GOAL in request.messages[-1]["content"]  # the chat, from the prompt's history
        assert "### Task" not in request.messages[-1]["content"]  # not Open WebUI's own instructions
    assert asked[2].format["properties"]["follow_ups"]["minItems"] == 3


async def test_a_broken_model_answer_falls_back_to_the_rule(llm_api: LiveAPI, fake_ollama: Any) -> None:
    from tests.fake_ollama import Reply

    fake_ollama.replies.append(Reply("not json"))
    assert json.loads(await quick(llm_api, fill(TITLE))) == {"title": "20-second talking head explaining how"}


async def test_a_goal_under_a_task_heading_is_planned(rules_api: LiveAPI, executors: Any) -> None:
    async with rules_api.client() as c:
        r = await c.post("/v1/chat/completions", timeout=60, json={"model": "spinbot-plan", "messages": [
            {"role": "user", "content": "### Task:\nMake a 20-second talking head about tides, female voice"}]})
    text = r.json()["choices"][0]["message"]["content"]
    assert "I planned this" in text and '"goal": "Make a 20-second talking head about tides' in text
