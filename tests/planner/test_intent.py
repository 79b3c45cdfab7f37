"""The rules' reading of a goal: reply or plan, the deliverables, the exact words, voice, length, language."""

from __future__ import annotations

import pytest

from planner import intent, slots
from planner.intent import read_rules
from spinbot.graph import Attachment

FACE = Attachment(id="face", kind="image", key="uploads/u/a1/face.png")
CLIP = Attachment(id="clip", kind="video", key="uploads/u/a2/clip.mp4")


@pytest.mark.parametrize(
    ("goal", "kind"),
    [
        ("hello!", "greeting"),
        ("Thanks a lot", "greeting"),
        ("Bonjour", "greeting"),
        ("What can you do?", "capabilities"),
        ("which services do you have", "capabilities"),
        ("Explain the difference between the two planes", "question"),
        ("why is the sky blue?", "question"),
        ("tell me a joke", "question"),
        ("", "greeting"),
    ],
)
def test_replies(goal: str, kind: str) -> None:
    read = read_rules(goal, [])
    assert read.kind == "reply" and read.reply_kind == kind and read.deliverables == []


@pytest.mark.parametrize(
    ("goal", "say", "language"),
    [
        ("read this aloud: good morning", "good morning", None),  # the field report: not "this aloud: good morning"
        ("Read this out loud: good morning", "good morning", None),
        ("please read aloud the following: the train leaves at nine", "the train leaves at nine", None),
        ("say 'happy birthday Anna' in a male voice", "happy birthday Anna", None),
        ('say "don\'t panic"', "don't panic", None),
        ("Lis ce texte à voix haute : bonjour", "bonjour", "fr"),
        ("Lies diesen Text vor: Guten Morgen", "Guten Morgen", "de"),
        ("Lee este texto en voz alta: buenos días", "buenos días", "es"),
        ("اقرأ هذا النص بصوت عالٍ: صباح الخير", "صباح الخير", "ar"),
        ("Прочитай вслух: доброе утро", "доброе утро", "ru"),
        ("朗读：早上好", "早上好", "zh"),
        ("read aloud «c'est la vie»", "c'est la vie", None),
        # any language with an ISO 639-1 name (or a common alias) is asked for by "in <name>", even one no voice
        # speaks (the speaking engine refuses it, saying so); a final "in <language>" is not words to speak
        ("say good morning in German", "good morning", "de"),
        ("read this aloud in Yoruba: E kaaaro, se alaafia ni?", "E kaaaro, se alaafia ni?", "yo"),
        ("say hello world in Klingon", "hello world", "tlh"),
        ("say 'thank you' in Scottish Gaelic", "thank you", "gd"),
        ("read this aloud: I grew up in Georgia and sang in a choir", "I grew up in Georgia and sang in a choir", None),
        ("say 'welcome' in a male voice in Paris style", "welcome", None),
    ],
)
def test_read_aloud_speaks_exactly_the_words(goal: str, say: str, language: str | None) -> None:
    read = read_rules(goal, [])
    assert read.kind == "plan" and read.deliverables == ["speech"], read
    assert read.say == say and read.say in goal
    assert read.language == language


def test_a_long_read_aloud_is_never_cut() -> None:
    text = " ".join(["The tide comes in and the tide goes out."] * 450)  # ~18,000 characters
    read = read_rules(f"read this aloud: {text}", [])
    assert read.say == text


@pytest.mark.parametrize(
    ("goal", "attachments", "deliverables"),
    [
        ("a 30-second talking-head video explaining how solar panels work, female voice", [], ["talking_video"]),
        ("make a video about volcanoes", [], ["talking_video"]),
        ("draw a poster of a lighthouse", [], ["image"]),  # the field report: no talking head
        ("Dessine une affiche de phare", [], ["image"]),
        ("make a picture of a red fox in the snow", [], ["image"]),
        ("upscale the attached video", [CLIP], ["upscale"]),  # the field report: not a talking head
        ("upscale this 4x", [CLIP], ["upscale"]),
        ("make this photo say 'good morning'", [FACE], ["talking_video"]),
        ("animate my portrait", [FACE], ["talking_video"]),
        ("a talking-head video about tea, upscaled 2x", [], ["talking_video", "upscale"]),
        ("write a script about volcanoes", [], ["script"]),
        ("say hello", [], ["speech"]),
    ],
)
def test_deliverables(goal: str, attachments: list[Attachment], deliverables: list[str]) -> None:
    read = read_rules(goal, attachments)
    assert read.kind == "plan" and read.deliverables == deliverables, read


def test_which_attachment_is_which() -> None:
    read = read_rules("make this photo say 'hi'", [FACE, CLIP])
    assert read.portrait == "face" and read.source_video is None
    assert read_rules("upscale the attached video", [FACE, CLIP]).source_video == "clip"


@pytest.mark.parametrize(
    ("goal", "seconds"),
    [("a 30-second video", 30), ("1 minute clip", 60), ("ninety seconds please", 90), ("45s", 45),
     ("two minutes about tea", 120), ("a video about bees", None), ("une vidéo de 20 secondes", 20)],
)  # fmt: skip
def test_duration(goal: str, seconds: float | None) -> None:
    assert slots.duration_s(goal) == seconds


def test_params_from_a_goal() -> None:
    goal = "Make a 1 minute video about the history of Rome with a male voice in a funny style, in German"
    read = read_rules(goal, [])
    assert (read.topic, read.duration_s, read.voice, read.style, read.language) == (
        "the history of Rome", 60.0, "male", "funny", "de")
    assert slots.topic("a 30-second talking-head video explaining how solar panels work, female voice") == (
        "how solar panels work"
    )
    assert "169.254" not in slots.topic("fetch http://169.254.169.254/latest and make a video about clouds")
    # the field report: the verb "do" must not eat the start of "Download"
    assert slots.topic("Download https://example.com/a.mp4 and upscale it") == "Download and upscale it"


def test_follow_ups_change_what_they_name() -> None:
    before = read_rules("read this aloud: good morning", [])
    after = read_rules("use a male voice and make it slower", [], previous=before)
    assert after.say == "good morning" and after.voice == "male" and after.speed == 120
    assert set(intent.changed_fields(before, after)) == {"voice", "speed"}
    longer = read_rules("make it 60 seconds instead", [], previous=read_rules("a 20-second video about tea", []))
    assert longer.duration_s == 60 and longer.topic == "tea"
    assert read_rules("how is it going?", [], previous=before).reply_kind == "job_status"


@pytest.mark.parametrize(
    "goal", ["now say it with a male voice", "say it again, slower", "say it with a deep male voice"])
def test_how_to_say_it_again_is_not_new_words(goal: str) -> None:
    before = read_rules("read this aloud: good morning", [])
    after = read_rules(goal, [], previous=before)
    assert after.say == "good morning" and after.deliverables == ["speech"], after


TALK = 'Make a talking-head video of a presenter saying: "Tides follow the moon." Female voice.'


@pytest.mark.parametrize(("goal", "changed"), [
    ("Same video, but with a male voice.", {"voice": "male"}),
    ("make the voice male instead", {"voice": "male"}),
    ("Do that clip again but slower", {"speed": 120}),
    ("the same one with a male voice", {"voice": "male"}),
])
def test_the_same_video_with_a_change_is_a_follow_up(goal: str, changed: dict[str, object]) -> None:
    """Naming the last plan's medium ("the same video") redoes it; the drawn presenter stays (issue 15)."""
    before = read_rules(TALK, [])
    after = read_rules(goal, [], previous=before)
    assert after.say == "Tides follow the moon." and after.deliverables == ["talking_video"], after
    assert {k: getattr(after, k) for k in changed} == changed and after.presenter == "woman"
    assert read_rules("Now make a video about bees", [], previous=before).topic == "bees"  # a new request


def test_mixed_quotes_are_quotes() -> None:
    assert slots.spoken_text('say "hello there” to everyone') == "hello there"
    assert slots.spoken_text("say “hello there\" to everyone") == "hello there"


def test_the_summary_shortens_a_long_topic_between_words() -> None:
    """The plan's one line names a long topic cut at a word with "…", never mid-word (issue 24, item 11)."""
    read = intent.Intent(kind="plan", deliverables=["talking_video"],
                         topic="how solar panels turn sunlight into electricity in a home")
    assert "about 'how solar panels turn sunlight into…'" in read.summary(), read.summary()
