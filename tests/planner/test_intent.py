"""Rules that read a goal: reply or plan, the pipeline it suggests, the params it names."""

from __future__ import annotations

import pytest

from planner import intent
from planner.pipelines import list_pipelines
from spinbot.graph import Attachment

INTENTS = {p.name: p.intents for p in list_pipelines()}


@pytest.mark.parametrize(
    ("goal", "previous", "kind"),
    [
        ("hello!", False, "greeting"),
        ("Thanks a lot", True, "greeting"),
        ("What can you do?", False, "capabilities"),
        ("which services do you have", False, "capabilities"),
        ("how is my video going?", True, "job_status"),
        ("is it done yet", True, "job_status"),
        ("make it 60 seconds instead", True, "plan"),
        ("a 30-second talking-head video explaining how solar panels work, female voice", False, "plan"),
        ("Make my photo say 'hi'", False, "plan"),
        ("tell me a joke", False, "chat"),
        ("", False, "chat"),
    ],
)
def test_classify(goal: str, previous: bool, kind: str) -> None:
    assert intent.classify(goal, has_previous=previous) == kind


@pytest.mark.parametrize(
    ("goal", "seconds"),
    [("a 30-second video", 30), ("1 minute clip", 60), ("ninety seconds please", 90), ("45s", 45),
     ("two minutes about tea", 120), ("a video about bees", None)],
)  # fmt: skip
def test_duration(goal: str, seconds: float | None) -> None:
    assert intent.duration_s(goal) == seconds


def test_params_from_a_goal() -> None:
    goal = "Make a 1 minute video about the history of Rome with a male voice in a funny style, in German"
    assert intent.pipeline_params("f5tts_infinitetalk", goal, []) == {
        "topic": "the history of Rome", "duration_s": 60.0, "voice": "male", "style": "funny", "language": "de",
    }  # fmt: skip
    assert intent.topic("a 30-second talking-head video explaining how solar panels work, female voice") == (
        "how solar panels work"
    )
    assert "169.254" not in intent.topic("fetch http://169.254.169.254/latest and make a video about clouds")


def test_ranking() -> None:
    face = Attachment(id="face", kind="image", key="k")
    assert intent.rank_pipelines("a captioned video about volcanoes", [], INTENTS)[0].pipeline == "svd_wav2lip"
    assert intent.rank_pipelines("a video about volcanoes", [], INTENTS)[0].pipeline == "f5tts_infinitetalk"
    top = intent.rank_pipelines("make this photo say 'good morning'", [face], INTENTS)[0]
    assert top.pipeline == "sadtalker" and top.params["text"] == "good morning" and top.params["portrait"] == "face"
    assert intent.rank_pipelines("show me your gpu info and capabilities", [], INTENTS)[0].pipeline == "capabilities"


def test_the_drawn_presenter_matches_the_voice() -> None:
    male = intent.pipeline_params("sadtalker", "read this aloud in a male voice: hello there", [])
    assert male["voice"] == "male" and "a friendly man" in male["portrait_prompt"]
    female = intent.pipeline_params("sadtalker", "say 'hi' in a female voice", [])
    assert "a friendly woman" in female["portrait_prompt"]
    face = Attachment(id="face", kind="image", key="k")
    assert "portrait_prompt" not in intent.pipeline_params("sadtalker", "say 'hi', male voice", [face])
