"""bench/requests_public.json keeps its shape, and bench/planning_public.py scores what it claims."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from bench.planning_public import as_case, attachment_id, load, score
from spinbot.graph import Attachment

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "bench" / "requests_public.json"
MIME = re.compile(r"^[a-z]+/[a-z0-9.+-]+$")


def manifest_services() -> set[str]:
    return {s["id"] for plane in ("control", "gpu")
            for s in json.loads((ROOT / "manifests" / f"{plane}.json").read_text())["services"]}


REQUESTS = load()
SERVICES = manifest_services()


def test_enough_requests_of_each_kind() -> None:
    kinds = [r["expect"]["kind"] for r in REQUESTS]
    assert len(REQUESTS) >= 80
    assert kinds.count("reply") >= 25 and kinds.count("plan") >= 25
    assert len({r["id"] for r in REQUESTS}) == len(REQUESTS), "ids are unique"


@pytest.mark.parametrize("request_", REQUESTS, ids=[r["id"] for r in REQUESTS])
def test_request_shape(request_: dict[str, Any]) -> None:
    source, expect = request_["source"], request_["expect"]
    assert source.get("url") or (source.get("repo") and source.get("path")) or source.get("find_string"), \
        "a source names where the text was found"
    assert source.get("kind"), "a source says what kind of text it is"
    assert request_["text"].strip()
    names = [a["name"] for a in request_["attachments"]]
    assert len(set(names)) == len(names)
    assert all(MIME.match(a["type"]) for a in request_["attachments"])
    assert expect["kind"] in ("plan", "reply")
    named = set(expect.get("services", [])) | set(expect.get("absent", []))
    assert named <= SERVICES, f"not in manifests/: {named - SERVICES}"
    assert set(expect.get("reads", [])) <= set(names), "reads names attachments of the request"
    assert expect.get("voice") in (None, "female", "male")
    if expect["kind"] == "plan":
        assert expect.get("services"), "a plan names the services it must have"
        assert not set(expect["services"]) & set(expect.get("absent", []))
    else:
        assert expect.get("operations") and expect.get("why"), "a reply says what was asked that no service offers"
        assert not ({"services", "say", "reads"} & expect.keys())
    if "say" in expect:
        assert expect["say"].strip() and expect["say"].strip(" .!?。") in request_["text"], \
            "words to speak are the request's own"
    if "duration_s" in expect:
        assert str(expect["duration_s"]) in request_["text"] or expect["duration_s"] == 60


def test_heldout_follows_the_fixed_rule() -> None:
    """The split is the file's hash rule, so nobody moves a request between splits after seeing results: a third
    of the first entries by their own fraction, half of a later batch by its rank within the batch."""
    salt = json.loads(DATA.read_text())["split"]["salt"]

    def fraction(id_: str) -> float:
        return int(hashlib.sha256(f"{salt}:{id_}".encode()).hexdigest()[:8], 16) / 2**32

    for r in REQUESTS:
        if "batch" not in r:
            assert r["heldout"] == (fraction(r["id"]) < 1 / 3), r["id"]
    for batch in {r["batch"] for r in REQUESTS if "batch" in r}:
        members = sorted((r for r in REQUESTS if r.get("batch") == batch), key=lambda r: fraction(r["id"]))
        assert [r["heldout"] for r in members] == [rank < len(members) // 2 for rank in range(len(members))], batch
    share = sum(r["heldout"] for r in REQUESTS) / len(REQUESTS)
    assert 0.2 < share < 0.45


def test_languages_and_apostrophes_are_covered() -> None:
    texts = [r["text"] for r in REQUESTS]
    assert sum(bool(re.search(r"[\u4e00-\u9fff]", t)) and not re.search(r"[\u3040-\u30ff]", t) for t in texts) >= 3
    assert sum(bool(re.search(r"[\u3040-\u30ff]", t)) for t in texts) >= 3
    assert sum(r["id"].startswith("es-") for r in REQUESTS) >= 3
    assert sum(r["id"].startswith("de-") for r in REQUESTS) >= 3
    assert sum("'" in r["expect"].get("say", "") for r in REQUESTS) >= 2


def test_attachments_become_graph_attachments() -> None:
    for r in REQUESTS:
        for a in as_case(r)["attachments"]:
            Attachment.model_validate(a)
    assert attachment_id("my photo (1).JPG") == "my_photo__1_.JPG"


def request(expect: dict[str, Any], attachments: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"id": "t", "text": "t", "attachments": attachments or [], "expect": expect}


def node(service: str, **params: Any) -> dict[str, Any]:
    return {"id": service.split(".")[0], "service": service, "params": params}


def plan(*nodes: dict[str, Any], message: str = "") -> dict[str, Any]:
    return {"kind": "plan", "graph": {"nodes": list(nodes)}, "message": message, "reply": None}


REPLY = {"kind": "reply", "graph": None, "reply": "I can't transcribe.", "message": ""}


def test_score_reply_expected() -> None:
    expect = {"kind": "reply", "operations": ["transcribe"], "why": "-"}
    assert score(request(expect), REPLY, llm=False)["kind_ok"]
    wrong = score(request(expect), plan(node("tts.synthesize", text="x")), llm=False)
    assert not wrong["kind_ok"] and wrong["wrong"] == ["planned a job"]


def test_score_words_voice_attachments() -> None:
    atts = [{"name": "photo 1.jpg", "type": "image/jpeg"}]
    expect = {"kind": "plan", "services": ["tts.synthesize", "video.animate_portrait"], "absent": ["image.render"],
              "say": "Let's go!", "voice": "male", "reads": ["photo 1.jpg"]}
    good = plan(node("tts.synthesize", text="let's go", voice="male"),
                node("video.animate_portrait", image={"$attachment": "photo_1.jpg"}, audio={"$node": "tts"}))
    assert score(request(expect, atts), good, llm=False)["details_ok"]
    cut = plan(node("tts.synthesize", text="Let", voice="male"),
               node("video.animate_portrait", image={"$node": "image", "output": "image"}), node("image.render"))
    got = score(request(expect, atts), cut, llm=False)
    assert not got["services_ok"] and not got["details_ok"]
    assert "has image.render" in got["wrong"] and "unread photo 1.jpg" in got["wrong"]
    assert any(w.startswith("says") for w in got["wrong"])
    female = plan(node("tts.synthesize", text="Let's go!"), node("video.animate_portrait",
                                                                 image={"$attachment": "photo_1.jpg"}))
    assert "voice ['female']" in score(request(expect, atts), female, llm=False)["wrong"]


def test_score_script_only_and_length() -> None:
    expect = {"kind": "plan", "services": ["llm.generate_script"], "needs_llm": True, "duration_s": 60}
    assert score(request(expect), REPLY, llm=False)["kind_ok"], "without an LLM the honest answer is a reply"
    sized = plan(node("llm.generate_script", topic="me", duration_s=55))
    got = score(request(expect), sized, llm=True)
    assert got["details_ok"] and got["length"] == "met"
    short = {"kind": "plan", "services": ["tts.synthesize"], "duration_s": 30}
    assert score(request(short), plan(node("tts.synthesize", text="Hi there.")), llm=False)["length"] == "ignored"
    said = plan(node("tts.synthesize", text="Hi there."), message="30 s cannot be met without an LLM: about 1 s")
    assert score(request(short), said, llm=False)["length"] == "refused"


async def test_measure_asks_the_given_ollama_server(fake_ollama: Any) -> None:
    """--ollama-url reaches the model; a server with no usable answer leaves the rules' plans, scored the same."""
    from bench.planning import bench_settings
    from bench.planning_public import measure
    from spinbot.capabilities import committed_manifest

    picked = [r for r in REQUESTS if r["id"] in ("tbh-21366323", "mt-tesla")]
    settings = bench_settings(fake_ollama.url, "qwen2.5:7b-instruct", "model")
    rows = await measure(picked, settings, committed_manifest(), llm=True)
    assert fake_ollama.chat_requests, "the planner asked the server"
    assert [r["request"]["id"] for r in rows] == ["tbh-21366323", "mt-tesla"]
    assert {r["group"] for r in rows} == {"servable", "unservable"}
    assert all(r["seconds"] > 0 for r in rows)


def test_compare_names_dev_changes_and_only_counts_heldout_ones() -> None:
    from bench.planning_public import compare_table, results_json

    def row(id: str, heldout: bool, ok: bool) -> dict[str, Any]:
        return {"request": {"id": id}, "heldout": heldout, "group": "servable", "services_ok": ok, "details_ok": ok,
                "wrong": [] if ok else ["missing x"], "got": ""}

    old = results_json([row("a", False, False), row("b", True, True), row("c", False, True)])
    table = compare_table(old, [row("a", False, True), row("b", True, False), row("c", False, True)], False)
    cells = [list(c.cells) for c in table.columns]
    assert cells[0] == ["a", "(held-out)"] and cells[2] == ["fixed", "0 fixed, 1 broken"]


def test_names_what_it_cannot_do() -> None:
    from bench.planning_public import names_any

    assert names_any("I can't do transcription; I can read text aloud.", ["transcribe"])
    assert names_any("Slow-motion is not something I offer.", ["slow motion"])
    assert not names_any("Planned: speech, about 'transcribe this audio'", ["transcribe"]), "an echo names nothing"
    expect = {"kind": "reply", "operations": ["stabilise"], "why": "-"}
    said = {"kind": "reply", "graph": None, "reply": "I cannot stabilize a video.", "message": ""}
    assert score(request(expect), said, llm=False)["named"]
    assert score(request(expect), REPLY, llm=False)["named"] is False
