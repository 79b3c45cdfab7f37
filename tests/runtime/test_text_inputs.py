"""A text-typed input bound to a text file (an attachment) reads the file's words before the handler runs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from executors.middleware import read_text_files
from spinbot.artifacts import LocalStore
from spinbot.errors import PermanentError
from spinbot.queue import JobQueue
from spinbot.settings import Settings
from spinbot.text import MAX_TEXT_FILE_BYTES
from tests.runtime.conftest import InProcess, graph, wait_terminal

INPUTS = {"text": "text", "video": "video"}


async def stored(tmp_path: Path, name: str, data: bytes) -> tuple[Any, dict[str, Any]]:
    store = LocalStore(tmp_path / "store")
    src = tmp_path / name
    src.write_bytes(data)
    info = await store.put_file(f"uploads/o/a1/{name}", src, "text/plain")
    return SimpleNamespace(store=store), {"id": "a1", "kind": "text", "name": name} | info.descriptor()


async def test_a_text_file_becomes_its_words_and_other_inputs_stay(tmp_path: Path) -> None:
    ctx, att = await stored(tmp_path, "subs.srt", "\ufeff1\r\n00:00:01,000 --> 00:00:02,000\r\nGrüße\r\n".encode())
    video = {"key": "uploads/o/a2/clip.mp4", "contentType": "video/mp4"}
    out = await read_text_files(ctx, INPUTS, {"text": att, "video": video, "speed": 160})
    assert out == {"text": "1\n00:00:01,000 --> 00:00:02,000\nGrüße\n", "video": video, "speed": 160}
    assert await read_text_files(ctx, INPUTS, {"text": "literal words"}) == {"text": "literal words"}


@pytest.mark.parametrize(("data", "says"), [
    (b"\xff\xfe\x00h\x00i", "is not UTF-8 text"),
    (b"PK\x03\x04 zipped", "is not UTF-8 text"),
    (b"word " * (MAX_TEXT_FILE_BYTES // 5 + 1), "bytes, more text than 'text' takes"),
])  # fmt: skip
async def test_a_file_that_is_no_text_fails_the_node_for_good(tmp_path: Path, data: bytes, says: str) -> None:
    ctx, att = await stored(tmp_path, "notes.txt", data)
    with pytest.raises(PermanentError, match=says) as e:
        await read_text_files(ctx, INPUTS, {"text": att})
    assert "notes.txt" in e.value.message


async def test_a_job_step_reads_an_attached_text_file_as_its_words(
    inproc: InProcess, queue: JobQueue, settings: Settings, tmp_path: Path
) -> None:
    """Executors on real Redis and Postgres: the step gets the file's words, the graph keeps the reference."""
    src = tmp_path / "notes.txt"
    src.write_bytes("\ufeffGood morning,\r\nworld.".encode())
    await LocalStore(settings.artifacts_dir).put_file("uploads/t/a1/notes.txt", src, "text/plain")
    await inproc.both()
    g = graph([{"id": "a", "service": "diag.echo", "plane": "gpu", "params": {"text": {"$attachment": "a1"}}}],
              context={"attachments": [{"id": "a1", "kind": "text", "key": "uploads/t/a1/notes.txt",
                                        "name": "notes.txt", "contentType": "text/plain"}]})
    st = await wait_terminal(queue, await queue.submit(g, owner="t"))
    assert st.status == "completed", st.error
    node = st.graph["nodes"][0]
    assert node["output"]["text"] == "Good morning,\nworld." and node["params"]["text"] == {"$attachment": "a1"}
