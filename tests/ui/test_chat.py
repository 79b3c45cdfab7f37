"""The chat page end to end: a goal, the planner (replaying Ollama), the plan graph, live progress,
the produced audio playing; review before run; a reload in the middle of a job."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from spinbot.settings import Settings
from tests.fake_ollama import FakeOllama
from tests.ui.conftest import Console, LiveStack, Shots, TcpProxy

SPOKEN = "Hello from Spinbot. This sentence was planned in the chat and spoken on the GPU plane."
TTS_PLAN = {
    "steps": [{"id": "voice", "service": "tts.synthesize", "params": {"text": SPOKEN, "voice": "female"}, "inputs": {}}]
}
WAIT_PLAN = {"steps": [{"id": "pause", "service": "diag.wait", "params": {"seconds": 5, "steps": 20}, "inputs": {}}]}


@pytest.fixture
def stack_settings(settings: Settings, fake_ollama: FakeOllama) -> Settings:
    """The planner talks to the replaying Ollama, whose direct plans use diagnostic services (long, cheap jobs)."""
    return settings.model_copy(update={"ollama_url": fake_ollama.url,
                                       "planner_direct_plans": True})  # the scripted model writes diag plans


async def percent_shown(page: Any) -> int:
    text = await page.locator(".job-panel .bar-text").inner_text()
    m = re.match(r"(\d+) %", text)
    assert m, text
    return int(m.group(1))


async def send(page: Any, goal: str) -> None:
    await page.get_by_label("Message").fill(goal)
    await page.get_by_label("Message").press("Enter")


async def test_goal_to_plan_progress_and_audio(
    stack: LiveStack, open_page: Any, shots: Shots, fake_ollama: FakeOllama
) -> None:
    fake_ollama.replies.extend([TTS_PLAN] * 3)
    page = await open_page("/")
    await page.get_by_label("Message").fill("Read this aloud in a female voice: " + SPOKEN)
    await shots(page, "goal")
    await page.get_by_label("Message").press("Enter")

    await page.wait_for_selector(".msg.assistant svg.dag .dag-node[data-node='voice'] .dag-plane-label")
    assert "GPU" in await page.locator(".dag-node[data-node='voice']").text_content()
    await shots(page, "plan")
    await page.wait_for_selector(".job-panel[data-status='completed']", timeout=60_000)
    assert await percent_shown(page) == 100
    assert await page.locator(".node-row[data-node='voice'].status-completed").count() == 1
    assert "voice" in await page.locator(".msg.assistant .md").inner_text()  # the streamed answer

    audio = page.locator(".artifact audio").first
    await audio.wait_for()
    duration = await audio.evaluate(
        "a => a.readyState >= 1 ? a.duration"
        " : new Promise(r => a.addEventListener('loadedmetadata', () => r(a.duration), {once: true}))"
    )
    assert duration > 1.0, duration
    played = await audio.evaluate("a => a.play().then(() => new Promise(r => setTimeout(() => r(a.currentTime), 700)))")
    assert played > 0, "the audio did not play"
    # Seeking needs range requests: jump near the end and see the element get there.
    seeked = await audio.evaluate(
        "a => new Promise(r => { a.addEventListener('seeked', () => r(a.currentTime), {once: true});"
        " a.currentTime = a.duration - 0.5; })"
    )
    assert seeked > duration - 1.0
    await audio.evaluate("a => a.pause()")
    await shots(page, "audio")
    # The conversation is listed, and the job history has the job.
    await page.wait_for_selector("#conversations a[aria-current='page']")
    job_id = await page.locator(".job-panel").get_attribute("data-job")
    assert (await stack.get(f"/api/jobs/{job_id}"))["status"] == "completed"


def small_png(path: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (64, 48), (40, 120, 200)).save(path)
    return path


async def test_review_then_run_and_reload_mid_job(
    stack: LiveStack, open_page: Any, shots: Shots, fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    fake_ollama.replies.extend([WAIT_PLAN] * 3)
    page = await open_page("/", width=375, height=900)
    await page.get_by_label("Review before run").check()
    await page.set_input_files("#attach-input", str(small_png(tmp_path / "photo.png")))
    await page.wait_for_selector(".composer .attach-preview img")  # a preview before sending
    await send(page, "Make a five second pause for the UI test")
    run = page.get_by_role("button", name="Run")
    await run.wait_for()
    assert await page.locator(".job-panel").count() == 0  # nothing runs before it is confirmed
    await shots(page, "review")
    await page.get_by_role("button", name="Change it").click()  # back to the composer, to say what to change
    assert await page.evaluate("() => document.activeElement.getAttribute('aria-label')") == "Message"

    await run.click()
    await page.wait_for_function(
        "() => parseInt(document.querySelector('.job-bar')?.getAttribute('aria-valuenow')) >= 15"
    )
    before = await percent_shown(page)
    await shots(page, "running")
    assert "?c=" in page.url  # the conversation is in the address, so a reload reopens it

    await page.reload()
    await page.wait_for_selector(".job-panel")
    assert await percent_shown(page) >= before  # picked up, not restarted
    # The attachment was uploaded with the message and comes back with the conversation.
    photo = page.locator(".msg.user .attach-preview img")
    await photo.wait_for()
    await page.wait_for_function("() => document.querySelector('.msg.user .attach-preview img').naturalWidth === 64")
    await shots(page, "reloaded")
    await page.wait_for_selector(".job-panel[data-status='completed']", timeout=30_000)
    assert await percent_shown(page) == 100
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 375
    # Run's turn ends with the final answer, stored in the conversation (not "Press Run"), here and after a reload.
    answer = page.locator(".msg.assistant .md").first
    await page.wait_for_function(
        "() => document.querySelector('.msg.assistant .md').textContent.includes('Done')", timeout=30_000)
    assert "Press Run" not in await answer.inner_text()
    await shots(page, "completed")
    await page.reload()
    await page.wait_for_selector(".job-panel[data-status='completed']")
    text = await page.locator(".msg.assistant .md").first.inner_text()
    assert "Done" in text and "Press Run" not in text and "Job page" in text, text
    await shots(page, "completed-reloaded")


async def test_a_message_sent_while_a_job_runs_is_queued_then_sent(
    stack: LiveStack, open_page: Any, shots: Shots, fake_ollama: FakeOllama
) -> None:
    fake_ollama.replies.extend([WAIT_PLAN] * 3)
    page = await open_page("/")
    await send(page, "Make a five second pause for the UI test")
    await page.wait_for_selector(".job-panel[data-status='running']")
    assert await page.get_by_role("button", name="Queue").is_visible()  # says what Enter does now
    await send(page, "hello")
    queued = page.locator(".msg.user.queued")
    await queued.wait_for()
    assert "Queued: sent when the current answer ends." in await queued.inner_text()
    assert await page.get_by_label("Message").input_value() == ""
    await shots(page, "queued")
    # Edit takes it back; sending again queues it again
    await queued.get_by_role("button", name="Edit").click()
    assert await page.get_by_label("Message").input_value() == "hello" and await queued.count() == 0
    await page.get_by_label("Message").press("Enter")
    await page.locator(".msg.user.queued").wait_for()
    await page.wait_for_selector(".job-panel[data-status='completed']", timeout=30_000)
    # the job's answer ended: the queued message went as the next turn, and was answered
    await page.wait_for_function("() => document.querySelectorAll('.msg.assistant').length === 2", timeout=30_000)
    assert await page.locator(".msg.user.queued").count() == 0
    assert await page.locator(".msg.user").nth(1).inner_text() == "hello"
    await page.wait_for_function(
        "() => document.querySelectorAll('.msg.assistant .md')[1].textContent.includes('Hello')", timeout=30_000)
    assert await page.get_by_role("button", name="Send").is_visible()
    await shots(page, "sent")


async def test_chat_stream_drop_mid_job(
    stack: LiveStack, proxy: TcpProxy, open_page: Any, shots: Shots, fake_ollama: FakeOllama, console: Console
) -> None:
    fake_ollama.replies.extend([WAIT_PLAN] * 3)
    page = await open_page(f"{proxy.url}/")
    await send(page, "Make a five second pause for the UI test")
    await page.wait_for_function(
        "() => parseInt(document.querySelector('.job-bar')?.getAttribute('aria-valuenow')) >= 15"
    )
    await shots(page, "running")
    console.allow("net::ERR_INCOMPLETE_CHUNKED_ENCODING")  # Chromium logs the cut stream itself
    assert proxy.drop() > 0  # the chat answer's own stream is cut mid-job
    await page.wait_for_selector(".job-panel[data-status='completed']", timeout=30_000)
    assert await percent_shown(page) == 100
    job_id = await page.locator(".job-panel").get_attribute("data-job")
    # The answer the stream could not deliver is fetched from the stored conversation.
    await page.wait_for_function(
        "id => document.querySelector('.msg.assistant .md').textContent.includes(id)", arg=job_id
    )
    assert "Done" in await page.locator(".msg.assistant .md").inner_text()
    await shots(page, "completed")


async def test_a_file_that_cannot_be_attached_is_named_with_why(
    stack: LiveStack, open_page: Any, shots: Shots, tmp_path: Path, console: Console
) -> None:
    console.allow("status of 415")  # the refusal below is the point of the test
    page = await open_page("/")
    archive = tmp_path / "notes.zip"
    archive.write_bytes(b"PK\x03\x04\x00\x00")
    await page.set_input_files("#attach-input", str(archive))
    alert = page.get_by_role("alert").filter(has_text="notes.zip was not attached")
    await alert.wait_for()
    assert "application/zip" in await alert.inner_text()
    assert await page.locator(".composer .attach-preview").count() == 0
    # a file named like a picture that is not one: the server's 415 is shown, naming it
    fake = tmp_path / "face.png"
    fake.write_text("not a picture either")
    await page.set_input_files("#attach-input", str(fake))
    await page.wait_for_selector(".composer .attach-preview")
    await send(page, "make this photo say 'hello'")
    refusal = page.get_by_text("face.png is not an image")
    await refusal.wait_for()
    await shots(page, "refused-attachment")
