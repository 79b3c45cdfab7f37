"""Open WebUI 0.12 (installed from PyPI into a cached venv, started offline) against Spinbot, as a user drives it.

Chromium types into Open WebUI's own page; Open WebUI's server calls Spinbot's /v1 with its one key;
what the user sees (status line, answer, links) and what Spinbot did (its jobs, read with the key) are
both checked. Skipped only when open-webui cannot be installed here (the reason is given).
"""

from __future__ import annotations

import asyncio
import io
import re
import time
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from spinbot.settings import Settings
from tests.openwebui.conftest import OUTPUT, OpenWebUI
from tests.ui.conftest import LiveStack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the first test installs (~4 min) and starts it

SIGNED_PAGE = re.compile(r"https?://[^\s)\]]+/jobs/([0-9a-f]{32})\?exp=\d+&sig=[\w-]+")
READ = ('read aloud: "The tide comes in twice a day. The moon pulls the sea towards it. '
        'Then the water slowly goes out again."')
SAY = "hello from the garden"
LONG = ("make her say \"Good evening. Tonight we look at the garden in autumn, when the leaves turn red and gold, "
        "the last roses open, and the birds gather in the hedges before the long flight south. "
        "Thank you for watching, and see you next week.\"")


@pytest.fixture
async def page(browser: Any, openwebui: OpenWebUI, spinbot: LiveStack, request: pytest.FixtureRequest
               ) -> AsyncIterator[Any]:
    """Open WebUI's start page with the spinbot model picked, in a fresh browser context."""
    started = time.monotonic()
    ctx = await browser.new_context(viewport={"width": 1280, "height": 1000}, base_url=openwebui.url)
    pg = await ctx.new_page()
    pg.set_default_timeout(60_000)
    await pg.goto("/?model=spinbot", wait_until="load")  # not networkidle: socket.io never settles
    await pg.wait_for_selector("#chat-input")
    whats_new = pg.get_by_role("button", name="Okay, Let's Go!")
    if await whats_new.count():
        await whats_new.click()
    yield pg
    name = request.node.name.removeprefix("test_")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    await pg.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)
    await ctx.close()
    openwebui.record(f"{name}_s", time.monotonic() - started)


@pytest.fixture
def face(tmp_path: Path) -> Path:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (256, 256), (230, 200, 170))
    d = ImageDraw.Draw(im)
    d.ellipse((60, 40, 196, 216), fill=(240, 210, 180), outline=(90, 60, 40), width=3)
    d.ellipse((95, 100, 115, 115), fill=(40, 40, 40))
    d.ellipse((141, 100, 161, 115), fill=(40, 40, 40))
    d.arc((100, 140, 156, 180), 20, 160, fill=(150, 40, 40), width=4)
    path = tmp_path / "face.png"
    im.save(path)
    return path


async def send(page: Any, text: str, attach: Path | None = None) -> None:
    if attach is not None:
        await page.locator("input[type=file]").first.set_input_files(str(attach))
        await page.locator("img[alt]").or_(page.get_by_text(attach.name)).first.wait_for()
    await page.locator("#chat-input").click()
    await page.keyboard.type(text)  # typed, as a person does: the editor turns "quotes" into “quotes”
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r"/c/[\w-]+"))


async def owui_get(page: Any, path: str) -> Any:
    """Open WebUI's own API, as its page calls it (with the session token it keeps)."""
    return await page.evaluate("async (p) => (await (await fetch(p, {headers: {Authorization: "
                               "'Bearer ' + localStorage.token}})).json())", path)


async def thread(page: Any) -> list[dict[str, Any]]:
    """The chat's messages in order (Open WebUI keeps a tree: walk from the current one up)."""
    chat_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    history = (await owui_get(page, f"/api/v1/chats/{chat_id}"))["chat"]["history"]
    out, current = [], history.get("currentId")
    while current:
        message = history["messages"][current]
        out.append(message)
        current = message.get("parentId")
    return out[::-1]


async def answer(page: Any, n: int, until: Callable[[str], bool] = lambda t: "Job page:" in t,
                 timeout_s: float = 120.0) -> dict[str, Any]:
    """The n-th assistant message (1-based) once its content satisfies `until` and it is done."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answers = [m for m in await thread(page) if m.get("role") == "assistant"]
        if len(answers) >= n:
            last = answers[n - 1]
            if until(str(last.get("content") or "")) and last.get("done", True):
                return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"no finished answer {n} in {timeout_s:.0f} s; last seen: {str(last)[:1500]}")


def longer_than(text: str) -> Callable[[str], bool]:
    return lambda t: len(t) > len(text)


async def jobs(spinbot: LiveStack) -> list[dict[str, Any]]:
    return list((await spinbot.get("/api/jobs"))["items"])


async def job(spinbot: LiveStack, job_id: str) -> dict[str, Any]:
    return await spinbot.get(f"/api/jobs/{job_id}")


async def status_line(page: Any) -> str:
    button = page.get_by_role("button", name="Toggle status history")
    return str(await button.last.inner_text()) if await button.count() else ""


async def settled(spinbot: LiveStack, job_id: str, timeout_s: float) -> str:
    """The job's status once it is no longer queued or running (or when the time is up)."""
    deadline = time.monotonic() + timeout_s
    status = (await job(spinbot, job_id))["status"]
    for _ in range(int(timeout_s / 0.2)):
        if status not in ("queued", "running") or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
        status = (await job(spinbot, job_id))["status"]
    return str(status)


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes() / w.getframerate()


async def test_model_list_shows_spinbot(page: Any) -> None:
    models = await owui_get(page, "/api/models")
    assert {"spinbot", "spinbot-plan"} <= {m["id"] for m in models["data"]}
    await page.get_by_role("button", name=re.compile("Selected model")).click()
    await page.get_by_text("spinbot-plan").first.wait_for()  # offered in the picker


async def test_read_aloud_follow_up_and_the_links(page: Any, spinbot: LiveStack, browser: Any,
                                                  openwebui: OpenWebUI) -> None:
    await send(page, READ)
    first = await answer(page, 1)
    statuses = [s["description"] for s in first.get("statusHistory") or []]
    assert statuses[0] == "Understanding the goal…" and statuses[-1] == "Done", statuses
    assert statuses.count("Planning…") == 1 and any("%" in s for s in statuses), statuses
    assert all(a != b for a, b in zip(statuses, statuses[1:], strict=False)), statuses  # it moves, never stutters
    text = str(first["content"])
    page_link = SIGNED_PAGE.search(text)
    assert page_link, text
    (job_id,) = [j["id"] for j in await jobs(spinbot)]
    assert page_link.group(1) == job_id

    # The links work in a browser that has no Spinbot key: the audio downloads, the job page opens.
    audio_href = await page.get_by_role("link", name=re.compile("audio")).first.get_attribute("href")
    assert audio_href and "sig=" in audio_href, audio_href
    outsider = await browser.new_context()
    try:
        got = await outsider.request.get(audio_href)
        assert got.status == 200 and got.headers["content-type"].startswith("audio/")
        assert wav_seconds(await got.body()) > 2.0  # real speech, not a fraction of a word
        job_page = await outsider.new_page()
        await job_page.goto(page_link.group(0))
        await job_page.wait_for_selector(".job-panel[data-status='completed']")
        assert await job_page.locator("#key-dialog[open]").count() == 0
        assert await job_page.locator(".job-panel button.danger").count() == 0  # read-only: no Cancel
        assert "sig=" in str(await job_page.locator(".artifact audio").first.get_attribute("src"))
    finally:
        await outsider.close()

    # A follow-up revises the plan: the same words, now in a male voice.
    await send(page, "use a male voice instead")
    await answer(page, 2)
    newer = await jobs(spinbot)
    assert len(newer) == 2
    voices = [n for n in (await job(spinbot, newer[0]["id"]))["graph"]["nodes"] if n["service"] == "tts.synthesize"]
    first_tts = [n for n in (await job(spinbot, job_id))["graph"]["nodes"] if n["service"] == "tts.synthesize"]
    assert voices[0]["params"]["text"] == first_tts[0]["params"]["text"]
    assert voices[0]["params"].get("voice") == "male", voices[0]["params"]


async def test_an_attached_image_is_animated_with_the_users_words(page: Any, spinbot: LiveStack, face: Path) -> None:
    await send(page, f'make her say "{SAY}"', attach=face)
    done = await answer(page, 1)
    assert "video" in str(done["content"]) and "attached_files" not in str(done["content"])
    (made,) = await jobs(spinbot)
    graph = (await job(spinbot, made["id"]))["graph"]
    attachments = graph["context"]["attachments"]
    assert len(attachments) == 1 and attachments[0]["name"] == "face.png"  # named by Open WebUI's file block
    assert "attached_files" not in graph["context"]["goal"] and SAY in graph["context"]["goal"]
    nodes = {n["service"]: n for n in graph["nodes"]}
    assert nodes["tts.synthesize"]["params"]["text"] == SAY  # the user's words, not "file"
    assert nodes["video.animate_portrait"]["params"]["image"] == {"$attachment": attachments[0]["id"]}
    title = (await owui_get(page, f"/api/v1/chats/{page.url.rsplit('/', 1)[-1]}"))["title"]
    assert "attached" not in title and "<" not in title, title


async def test_stop_cancels_the_job(page: Any, spinbot: LiveStack, face: Path) -> None:
    await send(page, LONG, attach=face)
    seen: list[str] = []
    deadline = time.monotonic() + 90
    while len({s for s in seen if "frame" in s}) < 2 and time.monotonic() < deadline:
        if (line := await status_line(page)) and (not seen or line != seen[-1]):
            seen.append(line)
        await asyncio.sleep(0.2)
    assert len({s for s in seen if "frame" in s}) >= 2, seen  # the status line moves while it renders
    (running,) = await jobs(spinbot)
    assert running["status"] == "running"
    await page.get_by_role("button", name="Stop").click()
    stopped = await settled(spinbot, running["id"], timeout_s=20)
    assert stopped == "cancelled"


class TestContinue:
    @pytest.fixture
    def spinbot_settings(self, settings: Settings) -> Settings:
        from tests.openwebui.conftest import KEY

        # The answer stops waiting after 4 s and links the job; Continue picks the same job up.
        return settings.model_copy(update={"api_keys": [KEY], "chat_job_limit_s": 4.0})

    async def test_continue_resumes_the_same_job(self, page: Any, spinbot: LiveStack, face: Path) -> None:
        await send(page, LONG, attach=face)
        partial = await answer(page, 1, until=lambda t: "keeps running" in t)
        assert SIGNED_PAGE.search(str(partial["content"]))
        content = str(partial["content"])
        deadline = time.monotonic() + 240  # a talking head of ~15 s of speech takes 30-100 s on a loaded CI box
        while time.monotonic() < deadline:  # each continuation waits up to the limit again, as the first answer did
            await page.get_by_role("button", name="Continue Response").last.click()
            grown = longer_than(content)
            content = str((await answer(page, 1, until=grown))["content"])
            if re.search(r"\bDone(:|, but)", content):
                break
        # "Done, but": the drawn face below is no face to the detector, and the answer says so (issue 25's checks)
        assert re.search(r"keeps running[\s\S]*\n\s*Done(:|, but)", content), content
        assert len(re.findall(r"\bDone(:|, but)", content)) == 1, content
        (only,) = await jobs(spinbot)  # resumed, not re-run
        assert only["status"] == "completed"
