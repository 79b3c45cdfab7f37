"""How far a model is trusted is measured on probes, per field; a trusted field's checked value wins."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from planner import reading, trust
from planner.intent import read_rules
from spinbot.settings import Settings
from tests.evaluator.declared import declared_manifest
from tests.fake_ollama import FakeOllama

MANIFEST = declared_manifest()


def perfect(expected: dict[str, Any]) -> dict[str, Any]:
    base = {"kind": "plan", "deliverables": [], "say": "", "topic": "", "voice": "", "duration_s": 0,
            "language": "en", "answer": ""}
    return base | expected


def test_scores_are_per_field_shares_of_the_probes() -> None:
    answers: list[Any] = [perfect(e) for _, e in trust.PROBES]
    assert set(trust.score(answers).values()) == {1.0}
    # a model that copies words but always says "plan" with a talking video
    copier = [perfect({"say": e.get("say", ""), "deliverables": ["talking_video"]}) for _, e in trust.PROBES]
    scores = trust.score(copier)
    assert scores["say"] == 1.0 and scores["kind"] < trust.THRESHOLD and scores["deliverables"] < trust.THRESHOLD
    assert trust.Trust("m", scores).trusted == {"say"}  # it helps where it measured right, and only there
    assert trust.score([None] * len(trust.PROBES)) == dict.fromkeys(trust.FIELDS, 0.0)


async def test_calibration_asks_every_probe_and_is_remembered(fake_ollama: FakeOllama, tmp_path: Path) -> None:
    fake_ollama.replies.extend(perfect(e) for _, e in trust.PROBES)
    settings = Settings(ollama_url=fake_ollama.url, data_dir=tmp_path, planner_trust="auto")
    assert trust.current(settings, MANIFEST) is trust.RULES_ONLY  # never waits: rules-first until measured
    await _measured(settings)
    measured = trust.current(settings, MANIFEST)
    assert len(fake_ollama.chat_requests) == len(trust.PROBES)
    assert measured.digest == "0" * 64
    assert measured.trusted == set(trust.FIELDS)
    trust._known.clear()  # a restart: read back from DATA_DIR/trust/, no new probe calls
    assert trust.current(settings, MANIFEST).trusted == set(trust.FIELDS)
    assert len(fake_ollama.chat_requests) == len(trust.PROBES)
    assert trust.current(settings.model_copy(update={"planner_trust": "rules"}), MANIFEST).trusted == set()


async def _measured(settings: Settings) -> None:
    for _ in range(400):
        if not trust._running:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("calibration did not finish")


def test_the_probe_set_can_tell_a_biased_model() -> None:
    expected = [e for _, e in trust.PROBES]
    assert len(expected) >= 30
    assert sum(e["kind"] == "reply" for e in expected) >= 10
    assert sum(e.get("voice") == "" for e in expected) >= 10 and sum(bool(e.get("voice")) for e in expected) >= 5
    assert sum(e.get("language", "en") != "en" for e in expected) >= 8
    assert sum("'" in e.get("say", "") for e in expected) >= 5


def test_a_model_that_never_replies_or_invents_voices_is_not_trusted_for_those_fields() -> None:
    never_replies = [perfect(e) | {"kind": "plan", "deliverables": e.get("deliverables") or ["speech"]}
                     for _, e in trust.PROBES]
    scores = trust.score(never_replies)
    assert scores["kind"] == 0.0 and scores["say"] == 1.0  # ~2/3 of the probes are plans: a plain share says 0.66
    invents = [perfect(e) | {"voice": e.get("voice") or "female"} for _, e in trust.PROBES]
    assert trust.score(invents)["voice"] == 0.0
    assert "voice" not in trust.Trust("m", trust.score(invents)).trusted
    # none, "" and a missing-but-empty value all mean "no voice"; a broken answer is wrong
    assert trust._norm(None) is None and trust._norm("") is None and trust._norm([]) is None


async def test_trust_is_kept_per_model_digest(fake_ollama: FakeOllama, tmp_path: Path) -> None:
    from spinbot import llm

    fake_ollama.replies.extend(perfect(e) for _, e in trust.PROBES)
    settings = Settings(ollama_url=fake_ollama.url, data_dir=tmp_path, planner_trust="auto")
    llm.probe(settings)  # what the planner's availability check does first: learns the digest
    trust.current(settings, MANIFEST)
    await _measured(settings)
    kept = sorted(p.name for p in (tmp_path / "trust").iterdir())
    assert kept == [f"{settings.ollama_model.replace(':', '_')}_{'0' * 16}.json"]
    calls = len(fake_ollama.chat_requests)
    # the same model file behind another server (a restart on a new port): no probes
    trust._known.clear()
    assert trust.current(settings, MANIFEST).trusted == set(trust.FIELDS)
    # the model pulled again (a new digest): measured again
    fake_ollama.digests[settings.ollama_model] = "f" * 64
    llm._probes.clear()
    llm.probe(settings)
    fake_ollama.replies.extend(perfect(e) for _, e in trust.PROBES)
    assert trust.current(settings, MANIFEST) is trust.RULES_ONLY
    await _measured(settings)
    assert len(fake_ollama.chat_requests) == calls + len(trust.PROBES)
    assert trust.current(settings, MANIFEST).digest == "f" * 64


def test_a_trusted_field_wins_and_an_untrusted_one_only_fills_gaps() -> None:
    goal = "bonjour tout le monde, lis-le"
    ruled = read_rules(goal, [])
    answer = perfect({"deliverables": ["speech"], "say": "bonjour tout le monde", "language": "fr"})
    untrusted, _ = reading.merge(ruled, answer, goal, [])
    trusted, trace = reading.merge(ruled, answer, goal, [], frozenset(trust.FIELDS))
    assert trusted.kind == "plan" and trusted.deliverables == ["speech"] and trusted.say == "bonjour tout le monde"
    assert trace["say"] == "model (trusted)"
    # still checked: words the goal does not contain never pass, trusted or not
    lie = perfect({"deliverables": ["speech"], "say": "transfer the money"})
    merged, trace = reading.merge(read_rules("read this aloud: hello", []), lie, "read this aloud: hello", [],
                                  frozenset(trust.FIELDS))
    assert merged.say == "hello"
    assert untrusted.say in (None, "bonjour tout le monde")


@pytest.mark.parametrize(("goal", "cut"), [
    ("read this aloud: The tide comes in and the tide goes out, and the gulls cry over the grey water.",
     "The tide comes in and the tide"),  # a model's answer cut short (the bench's goal 12)
    ("read aloud: <script>alert(1)</script>", "alert(1)"),  # markup dropped (goal 45)
    ('say "Don\'t panic. Keep calm and carry on." in a male voice', "Keep calm and carry on"),  # a sentence left out
])
def test_a_trusted_model_that_leaves_words_out_does_not_shorten_the_rules_words(goal: str, cut: str) -> None:
    ruled = read_rules(goal, [])
    assert ruled.say and cut in ruled.say and ruled.say != cut
    merged, trace = reading.merge(ruled, perfect({"deliverables": ["speech"], "say": cut}), goal, [],
                                  frozenset(trust.FIELDS))
    assert merged.say == ruled.say and trace["say"].startswith("rules")


def test_a_model_measured_below_the_threshold_on_kind_does_not_turn_a_reply_into_a_job() -> None:
    goal = "bees, bees, bees for my class"  # the rules read no deliverable: a reply
    ruled = read_rules(goal, [])
    answer = perfect({"kind": "plan", "deliverables": ["talking_video"], "topic": "bees"})
    unmeasured, _ = reading.merge(ruled, answer, goal, [])  # rules mode, or still probing: the model fills the gap
    assert ruled.kind == "reply" and unmeasured.kind == "plan"
    weak = trust.Trust("m", {"kind": 0.73, "say": 1.0})
    assert weak.distrusted == {"kind"} and trust.RULES_ONLY.distrusted == frozenset()
    merged, trace = reading.merge(ruled, answer, goal, [], weak.trusted, None, weak.distrusted)
    assert merged.kind == "reply" and "kind" not in trace


async def test_the_probes_wait_while_a_users_goal_is_read(fake_ollama: FakeOllama, tmp_path: Path) -> None:
    """One model server answers one call at a time: a user's read must not queue behind the probes."""
    fake_ollama.replies.extend(perfect(e) for _, e in trust.PROBES)
    settings = Settings(ollama_url=fake_ollama.url, data_dir=tmp_path, planner_trust="auto")
    with trust.user_read():
        assert trust.current(settings, MANIFEST) is trust.RULES_ONLY  # calibration starts in the background
        await asyncio.sleep(0.5)
        assert fake_ollama.chat_requests == [], "no probe is asked while the user's goal is read"
    await _measured(settings)
    assert len(fake_ollama.chat_requests) == len(trust.PROBES)
