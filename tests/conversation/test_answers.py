"""Answers say "Done" only when the checked results match the request, else "Done, but" with the figures.

Real API, real executors (in process), real Redis and Postgres: a talking head is run with the request's
expectations in its metadata; the job view lists the findings and the chat answer leads with them.
"""

from __future__ import annotations

from typing import Any

from conversation.answers import answer_for
from tests.web.conftest import LiveAPI
from tests.web.test_node_cache import run, talking_head


def expecting(expect: dict[str, Any]) -> dict[str, Any]:
    return talking_head("female", metadata={"expect": expect})


async def test_a_video_shorter_than_asked_is_done_but_with_the_figures(api: LiveAPI, executors: Any) -> None:
    async with api.client() as c:
        job, done = await run(c, expecting({"deliverables": ["talking_video"], "duration_s": 20, "voice": "female"}))
        checks = {c["name"]: c for c in done["talk"]["output"]["checks"]}  # the node's event carries them
        assert checks["audio_stream"]["ok"] is True and checks["mouth_sync"]["ok"] is True
        seconds = checks["duration_s"]["value"]
        assert 0.5 < seconds < 4
        misses = [f["message"] for f in job["checks"] if f["kind"] == "miss"]
        assert misses == [f"the video is {seconds:.1f} s, not 20 s: the text spoken has 4 words"]
        state = await api.services.queue.get(job["id"])
        assert state is not None
        answer = answer_for(state, job["id"], api.url, api.services)
        assert answer.startswith(f"Done, but the video is {seconds:.1f} s, not 20 s: the text spoken has 4 words. "
                                 "3 steps ran")

        job, done = await run(c, expecting({"deliverables": ["talking_video"], "voice": "female"}))
        assert job["checks"] == []  # the same results, nothing asked that they miss
        assert {n for n, d in done.items() if d.get("reused")} == {"face", "say", "talk"}  # checks travel with them
        state = await api.services.queue.get(job["id"])
        assert state is not None and answer_for(state, job["id"], api.url, api.services).startswith(
        "Done: 3 steps reused from an earlier job (face, say, talk)")
