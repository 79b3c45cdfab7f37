"""The job page against real executors: live progress, resume after a reload, cancel."""

from __future__ import annotations

import re
from typing import Any

from tests.ui.conftest import Console, LiveStack, Shots, TcpProxy


def wait_graph(seconds: float, steps: int) -> dict[str, Any]:
    """A control-plane wait feeding a GPU-plane wait: two planes, one labelled edge, real progress."""
    return {
        "schema": "langgraph.v1",
        "workflowId": "ui-wait",
        "context": {"goal": "wait a while (UI test)"},
        "nodes": [
            {
                "id": "first",
                "name": "First wait",
                "service": "diag.wait",
                "plane": "control",
                "progressWeight": 0.5,
                "params": {"seconds": seconds / 2, "steps": steps, "text": "handed on"},
            },
            {
                "id": "second",
                "name": "Second wait",
                "service": "diag.wait",
                "plane": "gpu",
                "progressWeight": 0.5,
                "params": {"seconds": seconds / 2, "steps": steps, "text": {"$node": "first", "output": "text"}},
            },
        ],
        "edges": [],
    }


def stream_id(value: str | None) -> tuple[int, int]:
    ms, _, seq = str(value).partition("-")
    return int(ms), int(seq)


async def percent_shown(page: Any) -> int:
    text = await page.locator(".job-panel .bar-text").inner_text()
    m = re.match(r"(\d+) %", text)
    assert m, text
    return int(m.group(1))


async def test_reload_and_network_drop_mid_job(
    stack: LiveStack, proxy: TcpProxy, open_page: Any, shots: Shots, console: Console
) -> None:
    job = await stack.post("/api/jobs", {"graph": wait_graph(8.0, 24)})
    resumed_from: list[str | None] = []  # the Last-Event-ID of every request for the job's event stream
    page = await open_page(
        f"{proxy.url}/jobs/{job['id']}",
        on_request=lambda r: resumed_from.append(r.headers.get("last-event-id")) if "/events" in r.url else None,
    )
    await page.wait_for_selector("svg.dag .dag-node[data-node='second']")
    assert await page.locator(".dag-edge-label").text_content() == "text"  # the edge says what flows
    await page.wait_for_function(
        "() => parseInt(document.querySelector('.job-bar').getAttribute('aria-valuenow')) >= 10"
    )
    await shots(page, "running")
    before = await percent_shown(page)
    stored = await page.evaluate(f"() => JSON.parse(sessionStorage.getItem('spinbot.job.{job['id']}')).lastEventId")
    assert re.fullmatch(r"\d+-\d+", stored), stored

    await page.reload()
    await page.wait_for_selector(".job-panel")
    after_reload = await percent_shown(page)
    assert after_reload >= before, (before, after_reload)  # picked up where it was, not from zero
    await shots(page, "reloaded")

    # A network drop: every connection is cut; the stream reconnects and resumes from the last event it saw.
    await page.wait_for_function("() => document.querySelector('.job-bar').getAttribute('aria-valuenow') > 40")
    console.allow("net::ERR_INCOMPLETE_CHUNKED_ENCODING")  # Chromium logs the cut stream itself
    assert proxy.drop() > 0
    await page.wait_for_selector(".job-panel[data-status='completed']", timeout=30_000)
    # First load: after the snapshot's recent events; after the reload: from the id stored before it (or a
    # later one); after the drop: from the last id seen, later still.
    assert len(resumed_from) == 3, resumed_from
    assert all(i is not None and re.fullmatch(r"\d+-\d+", i) for i in resumed_from), resumed_from
    # events keep arriving between reading `stored` and the reload, so the page may resume from a later id
    assert stream_id(resumed_from[1]) >= stream_id(stored)
    assert stream_id(resumed_from[2]) > stream_id(resumed_from[1])
    assert await percent_shown(page) == 100
    assert await page.locator(".node-row.status-completed").count() == 2
    assert await page.locator(".dag-node.status-completed").count() == 2
    await shots(page, "completed")
    assert (await stack.get(f"/api/jobs/{job['id']}"))["status"] == "completed"


async def drawn_width(page: Any) -> float:
    """The job bar's drawn length (finished fill + stopped stripes), in % of the bar."""
    return float(await page.evaluate("""() => {
        const bar = document.querySelector('.job-bar');
        const w = (sel) => bar.querySelector(sel).getBoundingClientRect().width;
        return (w('.bar-fill') + w('.bar-stopped')) / bar.getBoundingClientRect().width * 100;
    }"""))


async def test_cancel_from_job_page(stack: LiveStack, open_page: Any, shots: Shots) -> None:
    graph = wait_graph(60.0, 60)
    del graph["context"]  # a hand-written graph with no goal: the page says nothing rather than "null"
    graph["nodes"][0]["params"] |= {"seconds": 1.0, "steps": 4}  # the first step finishes, the second is cut
    graph["nodes"].append({"id": "third", "name": "Third wait", "service": "diag.wait", "plane": "control",
                           "progressWeight": 0.5, "params": {"seconds": 1.0, "text": {"$node": "second",
                                                                                       "output": "text"}}})
    job = await stack.post("/api/jobs", {"graph": graph})
    page = await open_page(f"/jobs/{job['id']}")
    await page.wait_for_selector(".node-row.status-running")
    assert "null" not in await page.locator("main").inner_text()
    await page.wait_for_selector(".node-row[data-node='first'].status-completed")
    await page.wait_for_function(
        "() => parseInt(document.querySelector('.node-row[data-node=\"second\"] .node-bar')"
        ".getAttribute('aria-valuenow')) >= 10", timeout=30_000)
    await shots(page, "running")
    before = await drawn_width(page)
    await page.get_by_role("button", name="Cancel").click()
    await page.wait_for_selector(".job-panel[data-status='cancelled']", timeout=20_000)
    assert await page.get_by_role("button", name="Cancel").is_hidden()
    await page.wait_for_timeout(400)  # the bar's width transition (.3 s)
    await shots(page, "cancelled")
    # No jump backwards: the bar is as long as before the cancel; the finished step is the solid part.
    assert await drawn_width(page) >= before - 1, (before, await drawn_width(page))
    assert await page.locator(".job-bar").get_attribute("aria-valuenow") == "33"  # first of 3 equal weights
    text = await page.locator(".job-panel .bar-text").inner_text()
    assert text.startswith("33 % done · cancelled after") and "finished: First wait" in text, text
    assert "cancelled at" in text and ": Second wait" in text and "not started: Third wait" in text, text
    assert await page.locator(".node-row[data-node='second'].status-cancelled").count() == 1
    assert await page.locator(".node-row.status-running").count() == 0  # no step left blue
    assert (await stack.get(f"/api/jobs/{job['id']}"))["status"] == "cancelled"


MEDIA_GRAPH = {
    "schema": "langgraph.v1",
    "workflowId": "ui-media",
    "context": {"goal": "a small talking portrait (UI test)"},
    "nodes": [
        {
            "id": "voice",
            "name": "Speak",
            "service": "tts.synthesize",
            "plane": "gpu",
            "params": {"text": "Three artifacts: this voice, a portrait, and the two together."},
        },
        {
            "id": "portrait",
            "name": "Draw",
            "service": "image.render",
            "plane": "gpu",
            "params": {"prompt": "a friendly presenter", "width": 128, "height": 128},
        },
        {
            "id": "talk",
            "name": "Animate",
            "service": "video.animate_portrait",
            "plane": "gpu",
            "params": {
                "image": {"$node": "portrait", "output": "image"},
                "audio": {"$node": "voice", "output": "audio"},
                "fps": 10,
                "size": 128,
            },
        },
    ],
}

MEDIA_READY = """(el, event) => el.readyState >= 1 ? el.duration
  : new Promise(r => el.addEventListener(event, () => r(el.duration), {once: true}))"""
SEEK = """el => new Promise(r => { el.addEventListener('seeked', () => r(el.currentTime), {once: true});
  el.currentTime = el.duration / 2; })"""


async def test_artifacts_inline_with_players(stack: LiveStack, open_page: Any, shots: Shots) -> None:
    job = await stack.post("/api/jobs", {"graph": MEDIA_GRAPH})
    page = await open_page(f"/jobs/{job['id']}")
    await page.wait_for_selector(".job-panel[data-status='completed']", timeout=60_000)
    labels = await page.locator(".dag-edge-label").all_text_contents()
    assert sorted(labels) == ["audio", "image"]  # what flows into the animation
    img = page.locator(".artifact img")
    await page.wait_for_function("() => document.querySelector('.artifact img')?.naturalWidth === 128")
    assert await img.count() == 1
    audio = page.locator(".artifact audio")
    assert await audio.evaluate(MEDIA_READY, "loadedmetadata") > 1.0
    video = page.locator(".artifact video")
    duration = await video.evaluate(MEDIA_READY, "loadedmetadata")
    assert duration > 1.0
    assert await video.evaluate(SEEK) > 0.5  # seeking: range requests on the artifact
    for a in await page.locator(".artifact a[download]").all():
        assert "/api/artifacts/" in (await a.get_attribute("href") or "")
    await shots(page, "artifacts")
