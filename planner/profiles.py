"""Which of the caller's profiles a goal means, and what planning against it changes.

A goal names a profile by its name ("make Anna say good morning", "in Anna's voice"), by "my voice"
(the profile marked default), or not at all (the one picked in the composer, or the one the previous
plan used). A goal that names a profile the caller does not have ("profile Bob", "in Bob's voice",
"make Bob say ...") gets a reply listing the ones they have: the planner only ever sees the caller's
own profiles, so another key's profile reads as one that does not exist. Planning against a profile
adds its portrait and prepared voice as attachments (`profile-portrait`, `profile-voice`); nothing is
prepared again.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from planner.intent import Intent
from planner.models import Profile
from spinbot.graph import Attachment, Graph
from spinbot.names import name_key

PORTRAIT_ID = "profile-portrait"
VOICE_ID = "profile-voice"
#: "my voice", "in my own voice", "my face", "of me": the profile marked default.
MINE = re.compile(r"(?<!\w)(my (?:own )?(?:voice|face|profile|portrait|avatar)|(?:of|as) me(?!\w)|me saying)", re.I)
#: Where a goal uses a word as a profile's name, whether or not such a profile exists.
NAME_CUES = (
    re.compile(r"(?<!\w)profile\s+(?:named\s+|called\s+)?[\"“']?([^\W\d_][\w.-]*)", re.I),
    re.compile(r"(?<!\w)([^\W\d_][\w.-]*)['’]s\s+(?:own\s+)?(?:voice|face|profile|portrait|avatar)(?!\w)", re.I),
    re.compile(r"(?<!\w)(?:make|have|let)\s+([^\W\d_][\w.-]*)\s+(?:say|says|speak|read|talk|tell|sing|announce"
               r"|present|explain)(?!\w)", re.I),
)
NOT_NAMES = frozenset({"my", "your", "his", "her", "its", "their", "our", "the", "a", "an", "this", "that", "it",
                       "me", "him", "them", "us", "spinbot", "someone", "somebody", "one", "today", "default",
                       "woman", "man", "girl", "boy", "narrator", "presenter", "person", "speaker", "everyone"})
#: Words that ask for the voice alone: "say it in my voice" is speech, "make Anna say hi" a talking head.
VOICE_ONLY = re.compile(r"(?<!\w)(voice|audio|aloud|out loud|speech|recording|mp3|wav|narrat\w*)(?!\w)", re.I)


@dataclass(frozen=True, slots=True)
class ProfileMatch:
    """The profile a goal plans against (None: none), or the reply it gets instead (a name that is not one)."""

    profile: Profile | None = None
    reply: str | None = None


def canonical(text: str) -> str:
    """`text` as names are compared: composed (NFC) accents, a typographic apostrophe (’, as phones type it)
    as a plain one; so "Zoë" and "O'Brien" match however a keyboard encoded them."""
    return unicodedata.normalize("NFC", text).replace("\u2019", "'")


def find(goal: str, profiles: list[Profile], *, chosen: str | None = None, previous: str | None = None,
         attached: frozenset[str] = frozenset()) -> ProfileMatch:
    """The profile `goal` means among the caller's `profiles`; `chosen`: the id picked in the composer;
    `previous`: the name the previous plan used (a follow-up keeps it); `attached`: the kinds of the goal's
    attachments ("my portrait" with an image attached means that image, not the default profile)."""
    goal = canonical(goal)
    by_name = {name_key(p.name): p for p in profiles}
    cued = [m.group(1) for cue in NAME_CUES for m in cue.finditer(goal)]
    for word in cued:  # "make anna say", "Anna's voice", "profile anna": the name in any case
        if (p := by_name.get(name_key(word))) is not None:
            return usable(p)
    for p in sorted(profiles, key=lambda p: -len(p.name)):  # elsewhere only as written: "Max", not "the max speed"
        if re.search(rf"(?<!\w){re.escape(canonical(p.name))}(?!\w)", goal):
            return usable(p)
    for word in cued:  # a name no profile has: said only for a capitalised one ("make bees say" is no name)
        if word[:1].isupper() and word.lower() not in NOT_NAMES:
            return ProfileMatch(reply=missing(word, profiles))
    if chosen is not None:
        picked = next((p for p in profiles if p.id == chosen), None)
        return usable(picked) if picked else ProfileMatch(reply=missing(chosen, profiles))
    if mine := MINE.search(goal):
        said = mine.group(0).lower()  # "animate my portrait" with a portrait attached: the attachment is meant
        if ("image" in attached and re.search(r"face|portrait|avatar", said)) or (
                "audio" in attached and "voice" in said):
            return ProfileMatch()
        default = next((p for p in profiles if p.default), None)
        if default is None:
            return ProfileMatch(reply=missing(None, profiles))
        return usable(default)
    if previous is not None:
        return ProfileMatch(next((p for p in profiles if name_key(p.name) == name_key(previous)), None))
    return ProfileMatch()


def usable(p: Profile) -> ProfileMatch:
    if p.status == "preparing" and p.portrait is None:
        return ProfileMatch(reply=f"{p.name}'s voice is still being prepared; ask again when the profile is ready "
                                  "(the Profiles view shows its progress).")
    return ProfileMatch(p)


def missing(name: str | None, profiles: list[Profile]) -> str:
    """The reply to a goal naming a profile the caller does not have (None: "my voice" with no default)."""
    head = (f"There is no profile named {name!r}." if name is not None
            else "\"My voice\" means your default profile, and you have none.")
    if not profiles:
        return (f"{head} You have no profiles yet: make one in the Profiles view (or POST /api/profiles) from a "
                "portrait, a voice sample and the words it says.")
    names = ", ".join(p.name + (" (default)" if p.default else "") for p in profiles)
    return f"{head} Your profiles: {names}. Name one of them in the goal, e.g. \"make {profiles[0].name} say hello\"."


def attachments_of(p: Profile) -> list[Attachment]:
    """The profile's portrait and prepared voice as graph attachments (object keys the caller owns)."""
    out = []
    if p.portrait:
        out.append(Attachment(id=PORTRAIT_ID, kind="image", key=p.portrait, name=f"{p.name} portrait"))
    if p.voice and p.status == "ready":
        out.append(Attachment(id=VOICE_ID, kind="audio", key=p.voice, name=f"{p.name} voice"))
    return out


def voice_params(p: Profile) -> dict[str, object]:
    """What a speech step takes to speak in the profile's prepared voice (tts.synthesize's reference params)."""
    if not (p.voice and p.status == "ready" and p.reference_text):
        return {}
    return {"reference_audio": {"$attachment": VOICE_ID}, "reference_text": p.reference_text}


def apply(intent: Intent, p: Profile, goal: str, attachments: list[Attachment]) -> Intent:
    """The intent planned against profile `p`: its portrait animated unless the goal asks for the voice alone
    or attaches a face of its own; words such as "in my voice" are not part of what is said."""
    update: dict[str, object] = {"profile": p.name}
    if intent.say:
        name = re.escape(canonical(p.name)).replace("'", "['’]")
        said = re.sub(rf"[\s,]*(?:in|with|using)\s+(?:my|{name}['’]s)\s+(?:own\s+)?voice[.!]?$", "",
                      unicodedata.normalize("NFC", intent.say), flags=re.I).strip()
        update["say"] = said or intent.say
    if p.portrait and intent.portrait is None and not any(a.kind == "image" for a in attachments):
        if intent.deliverables == ["speech"] and not VOICE_ONLY.search(goal):
            update["deliverables"] = ["talking_video"]
        if "talking_video" in update.get("deliverables", intent.deliverables):  # type: ignore[operator]
            update["portrait"] = PORTRAIT_ID
    return intent.model_copy(update=update)


def note(p: Profile, graph: Graph) -> str:
    """What the plan took from the profile, for the answer ("with Anna's portrait and prepared voice")."""
    params = [v for n in graph.nodes for v in n.params.values()]
    used = [what for what, ref in (("portrait", PORTRAIT_ID), ("prepared voice", VOICE_ID))
            if {"$attachment": ref} in params]
    if not used:
        return f"profile {p.name} has nothing this plan can use"
    text = f"planned with profile {p.name}: its {' and '.join(used)}, nothing prepared again"
    speaks = any(n.service == "tts.synthesize" for n in graph.nodes)
    if p.status == "failed" and speaks:  # no voice to lend: said, or the stock voice passes for Eve's
        text += (f"; preparing {p.name}'s voice failed, so a built-in voice speaks"
                 " (add the voice sample again on the Profiles page)")
    elif p.voice and "prepared voice" not in used and speaks:
        text += " (the speech service here takes no reference voice, so a built-in voice speaks)"
    return text
