"""Careless and hostile use of profiles and the node cache (a review's findings).

Real API, real Redis and Postgres (tests/web/conftest.py). The races and the newline were defects, found
and fixed; the cross-key and delete-while-preparing tests are attacks that failed, kept so they stay failed.
"""

from __future__ import annotations

import asyncio

from spinbot.settings import Settings
from tests.web.conftest import LiveAPI, diag_graph, echo_node, png_bytes, serve
from tests.web.test_node_cache import run
from tests.web.test_profiles import ALPHA, BETA, SAID, keyed, speech_wav, upload  # noqa: F401 (keyed: a fixture)


async def test_profiles_made_at_once_are_not_refused_as_taken_names(keyed: LiveAPI) -> None:  # noqa: F811
    """A new key's first profiles, posted at once (a script, two tabs): each is the first, so each wants the
    default flag; the partial unique index on the default refused all but one with 409 'a profile named
    ... exists already', which is false."""
    async with keyed.client(ALPHA) as a:
        face = await upload(a, "face.png", png_bytes(), "image/png")
        names = [f"Person{i}" for i in range(6)]
        for _ in range(3):  # a race: a few rounds, each from no profiles
            got = await asyncio.gather(*(a.post("/api/profiles", json={"name": n, "portrait": face}) for n in names))
            assert [r.status_code for r in got] == [201] * len(names), [r.text for r in got if r.status_code != 201]
            listed = (await a.get("/api/profiles")).json()["items"]
            assert sorted(p["name"] for p in listed) == names
            assert sum(p["default"] for p in listed) == 1
            for p in listed:
                assert (await a.delete(f"/api/profiles/{p['id']}")).status_code == 204


async def test_making_two_profiles_the_default_at_once_keeps_one_default(keyed: LiveAPI) -> None:  # noqa: F811
    """Two 'Make default' clicks at once (PATCH default=true on two profiles): both succeed, one default stays;
    the second was refused with 409 'a profile named '' exists already'."""
    async with keyed.client(ALPHA) as a:
        face = await upload(a, "face.png", png_bytes(), "image/png")
        ids = []
        for n in ("Ada", "Bo", "Cy", "Di", "Ed"):
            r = await a.post("/api/profiles", json={"name": n, "portrait": face})
            assert r.status_code == 201, r.text
            ids.append(r.json()["profile"]["id"])
        for _ in range(3):
            got = await asyncio.gather(*(a.patch(f"/api/profiles/{i}", json={"default": True}) for i in ids[1:]))
            assert [r.status_code for r in got] == [200] * 4, [r.text for r in got if r.status_code != 200]
            listed = (await a.get("/api/profiles")).json()["items"]
            assert sum(p["default"] for p in listed) == 1


async def test_a_graph_cannot_save_a_profile_whose_name_ends_in_a_newline(keyed: LiveAPI) -> None:  # noqa: F811
    """metadata.profile.save_as was checked with re.match and a `$` that also matches before a final newline:
    'Zoe\\n' was saved, a name the API's own pattern refuses and that no goal can name."""
    async with keyed.client(ALPHA) as a:
        for name in ("Zoe\n", "Zoe\n\n", "\nZoe"):
            graph = diag_graph(echo_node("e")) | {"metadata": {"profile": {"save_as": name}}}
            r = await a.post("/api/jobs", json={"graph": graph})
            assert r.status_code == 422 and r.json()["field"] == "metadata.profile.save_as", r.text
        assert (await a.get("/api/profiles")).json() == {"items": []}


async def test_a_graph_refused_for_a_taken_profile_name_does_not_run(api_settings: Settings) -> None:
    """Graphs saving a profile of one name, sent at once: each passed the name check, each job was submitted,
    and all but one got 409 'a profile named ... exists already' while their jobs ran on (a voice prepared
    for no profile, and a client told its graph was refused).

    A refused graph's job counts against the key's (exact, global) job limit until it is cancelled, a moment
    later: the limit here leaves room for the 3 rounds of 4 at once, so what answers is the name check."""
    roomy = api_settings.model_copy(update={"api_keys": [ALPHA, BETA], "max_jobs_per_key": 16})
    async with serve(roomy) as live, live.client(ALPHA) as a:
        accepted: set[str] = set()
        for round_ in range(3):  # a race: a few rounds
            graph = diag_graph(echo_node("e")) | {"metadata": {"profile": {"save_as": f"Zoe{round_}"}}}
            got = await asyncio.gather(*(a.post("/api/jobs", json={"graph": graph}) for _ in range(4)))
            assert sorted(r.status_code for r in got) == [202, 409, 409, 409], [r.text for r in got]
            accepted |= {r.json()["id"] for r in got if r.status_code == 202}
            jobs = (await a.get("/api/jobs", params={"limit": 100})).json()["items"]
            assert [j["id"] for j in jobs if j["id"] not in accepted and j["status"] != "cancelled"] == []
        names = [p["name"] for p in (await a.get("/api/profiles")).json()["items"]]
        assert sorted(names) == ["Zoe0", "Zoe1", "Zoe2"]


def portrait_graph() -> dict[str, object]:
    return {"schema": "langgraph.v1", "workflowId": "face", "nodes": [
        {"id": "face", "service": "image.render", "plane": "gpu",
         "params": {"prompt": "a smiling presenter, green background", "width": 96, "height": 96}},
        {"id": "pub", "service": "artifact.publish", "plane": "control",
         "params": {"items": [{"$node": "face", "output": "image"}], "title": "face"}}],
        "edges": [{"from": "face", "to": "pub"}]}


async def test_the_node_cache_never_crosses_keys_and_a_reused_artifact_serves(keyed: LiveAPI,  # noqa: F811
                                                                               executors: object) -> None:
    """Key A runs a portrait twice (the second reused), key B the same graph: B computes its own, cannot read
    A's, and cannot name A's artifact in a graph; A's reused artifact is listed, downloads and publishes."""
    async with keyed.client(ALPHA) as a, keyed.client(BETA) as b:
        first, _ = await run(a, portrait_graph())
        second, done = await run(a, portrait_graph())
        assert done["face"]["reused"]["job"] == first["id"]
        image = {n["id"]: n for n in second["graph"]["nodes"]}["face"]["output"]["image"]
        listed = {x["key"]: x for x in second["artifacts"]}
        assert image["key"] in listed and image["key"].startswith(f"jobs/{first['id']}/")
        assert (await a.get(f"/api/artifacts/{image['key']}")).status_code == 200
        assert (await b.get(listed[image["key"]]["url"])).status_code == 200  # a signed link is for anyone it is given
        summary = {n["id"]: n for n in second["graph"]["nodes"]}["pub"]["output"]["summary"]
        assert summary["primary"]["key"] == image["key"] and summary["job"] == second["id"]

        theirs, done_b = await run(b, portrait_graph())
        assert not done_b["face"].get("reused")
        image_b = {n["id"]: n for n in theirs["graph"]["nodes"]}["face"]["output"]["image"]
        assert image_b["key"].startswith(f"jobs/{theirs['id']}/")
        assert (await b.get(f"/api/artifacts/{image['key']}")).status_code == 404
        steal = portrait_graph()
        steal["nodes"][1]["params"] = {"items": [image], "title": "theirs"}  # type: ignore[index]
        r = await b.post("/api/jobs", json={"graph": steal})
        assert r.status_code == 404 and r.json()["field"].startswith("nodes[1].params"), r.text


async def test_deleting_a_profile_while_its_voice_is_prepared_cancels_the_job(keyed: LiveAPI) -> None:  # noqa: F811
    async with keyed.client(ALPHA) as a:
        sample = await upload(a, "s.wav", speech_wav(), "audio/wav")
        r = await a.post("/api/profiles", json={"name": "Tess", "voice_sample": sample, "reference_text": SAID})
        assert r.status_code == 202, r.text
        profile, job = r.json()["profile"], r.json()["job"]
        assert profile["status"] == "preparing"
        assert (await a.delete(f"/api/profiles/{profile['id']}")).status_code == 204
        assert (await a.get(f"/api/jobs/{job['id']}")).json()["status"] == "cancelled"
        assert (await a.get(f"/api/profiles/{profile['id']}")).status_code == 404
        r = await a.post("/api/profiles", json={"name": "tess", "voice_sample": sample, "reference_text": SAID})
        assert r.status_code == 202, r.text  # the name is free again


async def test_a_name_with_spaces_around_it_is_the_name_without_them(keyed: LiveAPI) -> None:  # noqa: F811
    """'Anna ' (an API client's padding) was kept as typed: a second 'Anna' beside it, and goals saying
    'make Anna say hi' got 'There is no profile named 'Anna'. Your profiles: Anna '."""
    async with keyed.client(ALPHA) as a:
        face = await upload(a, "face.png", png_bytes(), "image/png")
        r = await a.post("/api/profiles", json={"name": " Anna ", "portrait": face})
        assert r.status_code == 201 and r.json()["profile"]["name"] == "Anna", r.text
        r = await a.post("/api/profiles", json={"name": "anna", "portrait": face})
        assert r.status_code == 409, r.text
        r = await a.post("/api/profiles", json={"name": "Max", "portrait": face})
        r = await a.patch(f"/api/profiles/{r.json()['profile']['id']}", json={"name": "Maxi\t"})
        assert r.status_code == 200 and r.json()["name"] == "Maxi", r.text
        graph = diag_graph(echo_node("e")) | {"metadata": {"profile": {"save_as": "Zoe "}}}
        r = await a.post("/api/jobs", json={"graph": graph})
        assert r.status_code == 422 and r.json()["field"] == "metadata.profile.save_as", r.text
