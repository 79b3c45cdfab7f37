"""The Profiles view in Chromium: make a profile from files, watch its voice being prepared, pick it in the
composer and generate from it, see a refused sample's error, delete."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.ui.conftest import Console, LiveStack, Shots
from tests.web.conftest import png_bytes, wav_bytes
from tests.web.test_profiles import SAID, speech_wav


def file(name: str, mime: str, data: bytes) -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": data}


async def fill_form(page: Any, name: str, *, portrait: bytes | None = None, sample: bytes | None = None,
                    text: str = "", default: bool = False) -> None:
    form = page.locator("form.profile-form")
    await form.locator("input[name='name']").fill(name)
    if portrait is not None:
        await form.locator("input[name='portrait']").set_input_files(file(f"{name}.png", "image/png", portrait))
    if sample is not None:
        await form.locator("input[name='voice_sample']").set_input_files(file(f"{name}.wav", "audio/wav", sample))
    await form.locator("textarea[name='reference_text']").fill(text)
    if default:
        await form.locator("input[name='default']").check()
    await form.locator("button[type='submit']").click()


async def test_a_portrait_profile_is_made_picked_in_the_composer_and_deleted(
        stack: LiveStack, open_page: Any, shots: Shots, console: Console) -> None:
    console.allow("status of 415")  # the browser's own log of the refused upload below
    page = await open_page("/profiles")
    await page.wait_for_selector("text=No profiles yet")
    # a "portrait" that is not an image: the upload's content check refuses it, and the form says why
    await fill_form(page, "Anna", portrait=b"this is not a picture")
    note = page.locator("form.profile-form [role='alert']")
    await note.wait_for()
    assert "Not created: Anna.png is not an image" in await note.inner_text()
    await shots(page, "refused-portrait")

    await fill_form(page, "Anna", portrait=png_bytes(160), default=True)
    card = page.locator("article.profile-card[data-status='ready']")
    await card.wait_for()
    assert "Anna" in await card.locator("h2").inner_text() and "default" in await card.locator("h2").inner_text()
    assert await card.locator("img.profile-portrait").evaluate("img => img.complete && img.naturalWidth") == 160
    assert await note.is_hidden()
    await shots(page, "profile-made")

    # the composer lists it; picked, the plan animates the profile's portrait
    await page.click("nav.primary a[href='/']")
    picker = page.locator("select.profile-pick")
    await picker.locator("option", has_text="Anna (default)").wait_for(state="attached")
    await picker.select_option(label="Anna (default)")
    await page.fill(".composer-input", "say 'good morning everyone'")
    await page.click(".composer button[type='submit']")
    await page.wait_for_selector(".job-panel[data-status='completed']", timeout=90_000)
    await shots(page, "generated-from-profile")
    jobs = await stack.get("/api/jobs")
    graph = (await stack.get(f"/api/jobs/{jobs['items'][0]['id']}"))["graph"]
    talk = next(n for n in graph["nodes"] if n["service"] == "video.animate_portrait")
    assert talk["params"]["image"] == {"$attachment": "profile-portrait"}
    assert graph["metadata"]["profile"]["name"] == "Anna"

    await page.click("nav.primary a[href='/profiles']")
    await card.wait_for()
    # a second one, made the default with its button: "my voice" moves to it
    await fill_form(page, "Max", portrait=png_bytes(120))
    max_card = page.locator("article.profile-card", has_text="Max")
    await max_card.locator("button", has_text="Make default").click()
    await max_card.locator("h2 .badge", has_text="default").wait_for()
    assert [p["name"] for p in (await stack.get("/api/profiles"))["items"] if p["default"]] == ["Max"]
    for _ in range(2):
        page.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
        await page.locator("article.profile-card button.danger").first.click()
        await page.wait_for_function("n => document.querySelectorAll('article.profile-card').length < n", arg=2 - _)
    await page.wait_for_selector("text=No profiles yet")
    assert (await stack.get("/api/profiles"))["items"] == []


async def test_a_voice_sample_is_prepared_with_progress_and_a_bad_one_says_why(
        stack: LiveStack, open_page: Any, shots: Shots) -> None:
    page = await open_page("/profiles", width=420, height=1000)
    await page.wait_for_selector("text=No profiles yet")
    assert await page.locator(".first-default").is_visible()  # the first profile becomes the default: said
    await fill_form(page, "Anna", portrait=png_bytes(160), sample=speech_wav(), text=SAID)
    await page.wait_for_selector("article.profile-card[data-status='preparing'] [role='progressbar']")
    await shots(page, "preparing")
    ready = page.locator("article.profile-card[data-status='ready']")
    await ready.wait_for(timeout=90_000)
    assert "Hz" in await ready.inner_text() and SAID in await ready.inner_text()
    assert await ready.locator("audio").count() == 1
    await shots(page, "prepared")

    await fill_form(page, "Tony", sample=wav_bytes(2.0), text=SAID)  # a tone, no words
    failed = page.locator("article.profile-card[data-status='failed']")
    await failed.wait_for(timeout=90_000)
    assert "the voice sample was refused" in await failed.locator(".profile-error").inner_text()
    assert await failed.get_by_role("button", name="Make default").count() == 0  # "my voice" needs a voice
    assert await page.locator(".first-default").is_hidden()
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 420
    await shots(page, "refused-sample")
