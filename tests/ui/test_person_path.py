"""What a person meets in the web UI (issue 14): one message, one rendering; a message that cannot be sent
stays in the composer with the reason; stopped jobs show what completed; the review card shows what will
run; the polish (badges, one portrait, KB, clamped goals, titles that read apart, the log at its end)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spinbot.settings import Settings
from tests.fake_ollama import FakeOllama
from tests.ui.conftest import Console, LiveStack, Shots, wait_for
from tests.ui.test_chat import SPOKEN, TTS_PLAN, send

PAUSE_PLAN = {"steps": [{"id": "pause", "service": "diag.wait", "params": {"seconds": 8, "steps": 32}, "inputs": {}}]}
PORTRAIT_PLAN = {"steps": [{"id": "face", "service": "image.render",
                            "params": {"prompt": "a friendly presenter", "kind": "portrait"}, "inputs": {}}]}


@pytest.fixture
def stack_settings(settings: Settings, fake_ollama: FakeOllama) -> Settings:
    return settings.model_copy(update={"ollama_url": fake_ollama.url,
                                       "planner_direct_plans": True})


async def finished(stack: LiveStack, job_id: str) -> dict[str, Any]:
    async def done() -> Any:
        job = await stack.get(f"/api/jobs/{job_id}")
        return job if job["status"] in ("completed", "failed", "cancelled") else None

    return dict(await wait_for(done, 30, f"job {job_id} to end"))


async def test_a_progress_question_is_a_message_of_its_own(
    stack: LiveStack, open_page: Any, shots: Shots, fake_ollama: FakeOllama
) -> None:
    fake_ollama.replies.extend([PAUSE_PLAN] * 3)
    page = await open_page("/")
    await send(page, "Make an eight second pause for the UI test")
    await page.wait_for_function(
        "() => parseInt(document.querySelector('.job-bar')?.getAttribute('aria-valuenow')) >= 10")
    await page.reload()
    await page.wait_for_selector(".job-panel")
    await send(page, "what's the progress?")
    await page.wait_for_function(
        "() => document.querySelectorAll('.msg.assistant .md')[1]?.textContent.includes('still running')")
    await shots(page, "asked")
    await page.wait_for_selector(".job-panel[data-status='completed']", timeout=30_000)
    # The first turn gets its own final answer; the progress answer stays what it said.
    await page.wait_for_function(
        "() => document.querySelector('.msg.assistant .md').textContent.includes('Done')", timeout=15_000)
    answers = page.locator(".msg.assistant .md")
    assert "still running" not in await answers.nth(0).inner_text()
    assert "still running" in await answers.nth(1).inner_text()
    assert await page.locator(".job-panel").count() == 1
    await shots(page, "ended")

    await page.reload()
    await page.wait_for_selector(".job-panel[data-status='completed']")
    await page.wait_for_function("() => document.querySelectorAll('.msg.assistant').length === 2")
    assert await page.locator(".job-panel").count() == 1  # one job, one panel: under the turn that started it
    assert await page.locator(".msg.assistant").nth(0).locator(".job-panel").count() == 1
    assert "Done" in await answers.nth(0).inner_text()
    assert "still running" in await answers.nth(1).inner_text()
    await shots(page, "reloaded")


async def test_a_message_that_cannot_be_sent_stays_with_the_reason(
    stack: LiveStack, open_page: Any, shots: Shots, console: Console, tmp_path: Path
) -> None:
    page = await open_page("/")
    box = page.get_by_label("Message")
    assert await box.get_attribute("maxlength") is None  # a maxlength would cut a paste mid-word, silently
    note = page.locator(".composer-note")

    await box.fill("   \n  ")
    await box.press("Enter")
    await note.wait_for()
    assert "only spaces" in await note.inner_text()
    assert (await stack.get("/api/conversations"))["items"] == []  # no "Untitled" conversation
    await box.fill("a goal being written")
    assert await note.is_hidden()  # the "Nothing to send" note does not outlive what it was about
    await box.fill("")

    # A 30,000-character paste: kept whole, the warning comes at once (before any send), and Enter sends nothing.
    goal = ("a talking-head video about the history of tea " * 700)[:30_000]
    await box.focus()
    await box.evaluate("(el, v) => { el.value = v; el.dispatchEvent(new InputEvent('input', {bubbles: true,"
                       " inputType: 'insertFromPaste'})); }", goal)
    await page.wait_for_function("() => document.querySelector('.composer-note').textContent.includes('30,000')")
    assert "the limit is 20,000" in await note.inner_text() and "10,000" in await note.inner_text()
    assert await box.input_value() == goal
    await box.press("Enter")
    assert await page.locator(".msg").count() == 0 and await box.input_value() == goal
    assert "the limit is 20,000" in await note.inner_text()
    assert await page.locator(".empty").count() == 1  # the welcome stays
    await shots(page, "too-long")

    # Refused by the server (a "PNG" that is not a picture): the reason, the text kept, the welcome back.
    console.allow("415")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture at all")
    await page.set_input_files("#attach-input", str(broken))
    await box.fill("animate this portrait saying hello")
    await box.press("Enter")
    await page.wait_for_function("() => document.querySelector('.composer-note').textContent.startsWith('Not sent')")
    assert await box.input_value() == "animate this portrait saying hello"
    assert await page.locator(".msg").count() == 0 and await page.locator(".empty").count() == 1
    await shots(page, "refused-upload")

    # The server refuses (here: the conversation is gone): its reason is shown, the text stays.
    console.allow("404")
    page = await open_page("/?c=c_gone")
    await page.get_by_role("alert").filter(has_text="Could not open the conversation").wait_for()
    box = page.get_by_label("Message")
    await send(page, "read this aloud: hello")
    note = page.locator(".composer-note")
    await page.wait_for_function("() => document.querySelector('.composer-note').textContent.includes('c_gone')")
    assert "Not sent: conversation c_gone does not exist" in await note.inner_text()
    assert await box.input_value() == "read this aloud: hello"
    assert await page.locator(".msg").count() == 0
    await shots(page, "refused")


async def test_the_review_card_shows_each_steps_settings(
    stack: LiveStack, open_page: Any, shots: Shots, fake_ollama: FakeOllama
) -> None:
    fake_ollama.replies.extend([TTS_PLAN] * 3)
    page = await open_page("/")
    await page.get_by_label("Review before run").check()
    await send(page, "Read this aloud in a female voice: " + SPOKEN)
    await page.get_by_role("button", name="Run").wait_for()
    steps = page.locator(".plan-card .plan-steps")
    assert await steps.get_attribute("open") is not None  # open before Run: a wrong text can be caught
    voice = steps.locator("li[data-node='voice']")
    assert await voice.locator("dd[data-param='text']").inner_text() == SPOKEN
    assert await voice.locator("dd[data-param='voice']").inner_text() == "female"
    await voice.locator("dd[data-param='speed']").wait_for()  # left out: the speed it will use, said so
    assert await voice.locator("dd[data-param='speed']").inner_text() == "160 (default)"
    said = await page.locator(".msg.assistant").inner_text()
    assert "POST /api/jobs" not in said and "API clients" not in said  # no developer text to a person
    assert "Press Run" in said
    await steps.scroll_into_view_if_needed()
    await shots(page, "review")


def half_done(goal: str) -> dict[str, Any]:
    """Half the work completes, then a step fails for good."""
    return {"schema": "langgraph.v1", "workflowId": "ui-half", "context": {"goal": goal}, "nodes": [
        {"id": "first", "name": "Echo first", "service": "diag.echo", "plane": "control", "progressWeight": 0.5,
         "params": {"text": "hi"}},
        {"id": "boom", "name": "Fail on purpose", "service": "diag.fail", "plane": "gpu", "progressWeight": 0.5,
         "params": {"mode": "permanent"}}], "edges": [{"from": "first", "to": "boom"}]}


async def test_stopped_jobs_show_what_completed_and_long_goals_are_clamped(
    stack: LiveStack, open_page: Any, shots: Shots, console: Console
) -> None:
    failed = await stack.post("/api/jobs", {"graph": half_done("echo, then fail on purpose (UI test)")})
    huge_goal = ("make a long video about every river in Europe, one by one, with maps " * 300)[:20_000]
    huge = await stack.post("/api/jobs", {"graph": half_done(huge_goal)})
    stopped = {"schema": "langgraph.v1", "workflowId": "ui-stop", "context": {"goal": "a wait that is cancelled"},
               "nodes": [{"id": "w", "service": "diag.wait", "plane": "control",
                          "params": {"seconds": 30, "steps": 30}}]}
    cancelled = await stack.post("/api/jobs", {"graph": stopped})
    for job in (failed, huge):
        assert (await finished(stack, job["id"]))["status"] == "failed"
    await stack.post(f"/api/jobs/{cancelled['id']}/cancel", {})
    assert (await finished(stack, cancelled["id"]))["status"] == "cancelled"

    page = await open_page("/jobs")
    rows = page.locator("tbody tr")
    await page.locator(f"tr[data-job='{cancelled['id']}']").wait_for()
    for job, shown in ((failed, "50 %"), (huge, "50 %"), (cancelled, "0 %")):
        row = page.locator(f"tr[data-job='{job['id']}']")
        assert await row.locator("td[data-label='Progress']").inner_text() == shown
    tallest = max([(await rows.nth(i).bounding_box())["height"] for i in range(await rows.count())])
    assert tallest < 120, f"a jobs-table row is {tallest} px tall"  # the 20,000-character goal is clamped
    await shots(page, "jobs")

    page = await open_page(f"/jobs/{failed['id']}")
    await page.wait_for_selector(".job-panel[data-status='failed']")
    said = await page.locator(".job-panel .bar-text").inner_text()
    assert said.startswith("50 % done · failed") and "finished: Echo first" in said and "failed: Fail" in said, said
    await shots(page, "failed-job")

    console.allow("404")
    page = await open_page("/jobs/" + "0" * 32)
    alert = page.get_by_role("alert")
    await alert.wait_for()
    text = await alert.inner_text()
    assert text.count("does not exist") == 1 and text.count("0" * 32) == 1, text
    assert "null" not in await page.locator(".page").inner_text()
    await shots(page, "no-such-job")


BOXES = """() => [...document.querySelectorAll('svg.dag .dag-node')].map((g) => {
  const box = (sel) => { const b = g.querySelector(sel).getBBox(); return {x: b.x, y: b.y, w: b.width, h: b.height}; };
  return {title: box('.dag-title'), service: box('.dag-service'), badge: box('.dag-plane-label'),
          node: box('.dag-box')};
})"""


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    apart_x = a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
    apart_y = a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"]
    return not (apart_x or apart_y)


async def test_graph_badges_log_end_and_the_diagnostic_badge(stack: LiveStack, open_page: Any, shots: Shots) -> None:
    graph = {"schema": "langgraph.v1", "workflowId": "ui-names", "context": {"goal": "names that fill the box"},
             "nodes": [
                 {"id": "first", "name": "Wait with a very long title", "service": "diag.wait", "plane": "control",
                  "params": {"seconds": 1.5, "steps": 30, "text": "one"}},
                 {"id": "second", "name": "WWWWWWWWWWWWWWWWWWWWWWWW", "service": "diag.wait", "plane": "gpu",
                  "params": {"seconds": 0.5, "steps": 10, "text": {"$node": "first", "output": "text"}}}]}
    job = await stack.post("/api/jobs", {"graph": graph})
    await finished(stack, job["id"])
    page = await open_page(f"/jobs/{job['id']}")
    await page.wait_for_selector(".job-panel[data-status='completed'] svg.dag .dag-node")
    for node in await page.evaluate(BOXES):
        assert not overlaps(node["title"], node["badge"]) and not overlaps(node["service"], node["badge"]), node
        assert node["title"]["x"] + node["title"]["w"] <= node["node"]["w"], node  # the title stays in its box

    log_at_end = ("() => { const p = document.querySelector('.log-tail');"
                  " return p.scrollHeight > p.clientHeight && p.scrollTop + p.clientHeight >= p.scrollHeight - 2; }")
    await page.wait_for_function(log_at_end)
    await page.reload()  # the model comes back from this tab's storage, the panel is built before it is shown
    await page.wait_for_selector(".job-panel[data-status='completed']")
    await page.wait_for_function(log_at_end)
    await page.locator(".log-tail").scroll_into_view_if_needed()
    await shots(page, "job-log-end")

    page = await open_page("/capabilities")
    row = page.locator("tr[data-service='diag.echo']").first
    await row.wait_for()
    code, badge = row.locator(".service-id code"), row.locator(".service-id .badge")
    assert await badge.inner_text() == "diagnostic"
    gap = (await badge.bounding_box())["x"] - sum(
        (lambda b: (b["x"], b["width"]))(await code.bounding_box()))
    assert gap >= 4, f"the diagnostic badge is {gap} px from the service name"
    await row.scroll_into_view_if_needed()
    await shots(page, "capabilities")


async def test_the_portrait_shows_once_with_its_size_in_kb(
    stack: LiveStack, open_page: Any, shots: Shots, fake_ollama: FakeOllama
) -> None:
    fake_ollama.replies.extend([PORTRAIT_PLAN] * 3)
    page = await open_page("/")
    await send(page, "draw a portrait of a friendly presenter")
    await page.wait_for_selector(".job-panel[data-status='completed']", timeout=60_000)
    shown = ".msg.assistant img[src*='/api/artifacts/']"
    await page.wait_for_function("() => document.querySelector('.msg.assistant .md').textContent.includes('Done')")
    assert await page.locator(shown).count() == 1  # the job panel's card; the answer links to it
    assert await page.locator(".msg.assistant .md a.shown-below").count() == 1
    caption = await page.locator(".artifact figcaption").first.inner_text()
    assert " KB" in caption and "0.0 MB" not in caption, caption
    await shots(page, "portrait")
    await page.reload()
    await page.wait_for_selector(".job-panel[data-status='completed'] .artifact img")
    assert await page.locator(shown).count() == 1
    await shots(page, "portrait-reloaded")


async def test_similar_goals_read_apart_in_the_sidebar(stack: LiveStack, open_page: Any, shots: Shots) -> None:
    for _ in range(2):  # the same greeting twice: two conversations with the same title
        r = await stack.http.post("/api/chat", json={"message": "hello there, Spinbot, nice to meet you today"})
        assert r.status_code == 200, r.text
    page = await open_page("/")
    links = page.locator("#conversations a")
    await page.wait_for_function("() => document.querySelectorAll('#conversations a').length === 2")
    texts = [await links.nth(i).inner_text() for i in range(2)]
    assert len(set(texts)) == 2, texts  # the same title, told apart by when
    assert all(t.startswith("hello there, Spinbot, nice to meet you today") for t in texts), texts
    await shots(page, "sidebar")
