"""What a goal asks for, in the vocabulary's terms: the deliverables, which attachment fills which input,
the operations no service offers, and the input problems that get a reply instead of a job.

`choose` works on the goal's *frame*: the goal with the words to speak taken out (they are data), so a
sentence to read that mentions "image" or "30 seconds" changes nothing but what is said.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from planner.cues import (
    AND_ALSO,
    ATTACHED_WORDS,
    CLAUSE_END,
    COMBINE,
    CREATE,
    FILE_NAMED,
    HEARS,
    KIND_NOUNS,
    PLAIN_NOUN,
    PRESENTER,
    REFERENCE,
    REWRITES_WORDS,
    SCENE_WORDS,
    SPOKEN_VIDEO,
    THIS_KIND,
    TOPIC_MARKER,
    UNOFFERED,
    VIDEO_OF,
    VOICE_ASKED,
    VOICE_OVER,
)
from planner.slots import script_language
from planner.vocab import Vocabulary
from spinbot.graph import Attachment
from spinbot.languages import mentioned_languages

#: The words before a file name that make it the name of what is made.
OUTPUT_NAME = re.compile(r"(?:\bas|\bsave\w*|\boutput|\bexport\w*|\bname[ds]?(?: it)?|\bcall(?:ed| it)?|\binto|\bto)"
                         r"\s*[\"'“‘]?$", re.I)
SCENE_VIDEO = "text-to-video (a video of a scene)"
PICTURE_VIDEO = "image-to-video (a picture set in motion; I animate a face speaking)"
SLIDESHOW = "a slideshow from images"
#: "my video", "this clip": a video the user has (and may have forgotten to attach), not one to make
OWN_VIDEO = re.compile(rf"\b(?:this|that|these|my|our|attached|uploaded) (?:{KIND_NOUNS['video']})\b", re.I)
#: The languages a script's letters may be: Han characters alone are Chinese, Cantonese, Japanese or Korean words.
WRITTEN_IN = {"zh": {"zh", "yue", "ja", "ko"}}
TRANSLATE = "translate"  # planner.cues.UNOFFERED's name: the words given are to be spoken in another language
KIND_WORDS = {"image": "an image", "audio": "audio", "video": "a video", "text": "text", "json": "data"}


@dataclass
class Asked:
    """The deliverables a goal asks for, in build order, the attachments bound to their roles, what cannot be done."""

    deliverables: list[str] = field(default_factory=list)
    portrait: str | None = None
    source_video: str | None = None
    clips: list[str] = field(default_factory=list)
    soundtrack: str | None = None
    text_file: str | None = None
    voice_sample: str | None = None
    voice_words: str | None = None
    unoffered: list[str] = field(default_factory=list)
    problem: str | None = None
    frame: str = ""  # the goal without the words to speak and the operations left out


def not_offered(frame: str, attachments: list[Attachment], vocab: Vocabulary) -> tuple[list[str], str]:
    """The operations `frame` asks for that no service offers (by name), and the frame without their words.

    Words after a topic marker ("a video about how to translate") name a subject, not an operation. An
    operation that an offer's own cues name (a service that translates, once one is declared) is offered.
    """
    head = frame
    for marker in TOPIC_MARKER.finditer(frame):  # blank each subject, up to the end of its clause
        end = CLAUSE_END.search(frame, marker.end())
        stop = end.start() if end else len(frame)
        head = head[: marker.start()] + " " * (stop - marker.start()) + head[stop:]
    kinds = {a.kind for a in attachments}
    found: list[str] = []
    rest = frame
    for name, pattern, unless_kind in UNOFFERED:
        if unless_kind in kinds:
            continue
        hits = [m for m in pattern.finditer(head)
                if not any(d.cue is not None and d.cue.fullmatch(m.group(0)) for d in vocab.deliverables.values())]
        if hits:
            found.append(name)
        for m in hits:  # every clause that asks for it ("apply for a job ..., install a video tool")
            rest = _blank_clause(rest, m.start(), m.end())
    return found, rest


def _blank_clause(text: str, start: int, end: int) -> str:
    """`text` without the clause holding text[start:end] ("... and translate it to Spanish", "translate this")."""
    before = [m for m in CLAUSE_END.finditer(text, 0, start)]
    after = CLAUSE_END.search(text, end)
    lo = before[-1].start() if before else 0
    hi = after.start() if after else len(text)
    return text[:lo] + " " * (hi - lo) + text[hi:]


def choose(frame: str, said: str | None, attachments: list[Attachment], vocab: Vocabulary, goal: str) -> Asked:
    """The deliverables and bindings of a plan; `problem` set when the goal cannot be planned as asked."""
    asked = Asked()
    asked_for = frame  # before the operations left out are blanked: "a stabilised video with a voice-over"
    unoffered, frame = not_offered(frame, attachments, vocab)
    kinds: list[str] = [a.kind for a in attachments]
    if TRANSLATE not in unoffered and _translation(frame, said, kinds):
        unoffered.append(TRANSLATE)  # "my Spanish article as an English voice-over": a translation is the words
    asked.unoffered, asked.frame = unoffered, frame
    speaking = vocab.speaking()
    named = vocab.named(frame)
    for_words = any("text" in vocab.takes(n) for n in named if n != speaking)
    if unoffered and said is not None and (speaking not in named and not for_words
                                           or REWRITES_WORDS.intersection(unoffered)):
        return asked  # "analyse the sentiment of: '...'", "translate it and say it": the words are that operation's
    if speaking and said is not None and speaking not in named and not for_words:
        named.append(speaking)  # words to speak, unless another deliverable takes them (subtitles, a poster)
    elif speaking in named and said is not None and for_words and not _listed(speaking, vocab, frame):
        named.remove(speaking)  # "a poster that says 'Grand Opening'": the words are the poster's
    if speaking in named and said is None and (HEARS.intersection(unoffered) or unoffered and
                                               not VOICE_ASKED.search(frame)):
        named.remove(speaking)  # "transcribe this audio": the noun is the recording, not a request to speak
    named = [n for n in named if not _purpose(n, named, vocab, frame)]
    if said is not None:  # "a script I'd like to turn into a voice-over: '...'": the script is the words given
        named = [n for n in named if vocab.deliverables[n].output_type != "text" or vocab.deliverables[n].base
                 is not None]
    if unoffered:  # "I have a video file ...; transcribe it": the noun names the attachment, not something to make
        named = [n for n in named if vocab.deliverables[n].base is not None or vocab.deliverables[n].output_type
                 not in kinds]
    default = vocab.default()
    # what the video would have been made of (its voice-over) or what would have changed it (no video attached)
    parts = [n for n in named if default in named and n != default and (
        vocab.deliverables[n].base is None and vocab.deliverables[n].output_type in vocab.consumes_all(default)
        or vocab.deliverables[n].base_type == vocab.deliverables[default].output_type
        and vocab.deliverables[default].output_type not in kinds)]
    if default is not None and _voice_over_pictures(asked_for, kinds, vocab):
        # "turn my text into a video with a voice-over": a voice over pictures no service makes, not a face speaking
        asked.unoffered.append(_made_of(kinds))
        named = [n for n in named if n != default and not (vocab.deliverables[n].base is None and vocab.deliverables[
            n].output_type in vocab.consumes_all(default))]
    elif default in named and said is None and "audio" not in kinds and VIDEO_OF.search(frame) \
            and not SPOKEN_VIDEO.search(frame):  # "a video of ocean waves", "a video from this screenshot": no speech
        asked.unoffered.append(_made_of(kinds))
        named.remove(default)
    elif default in named and "video" not in kinds and SCENE_WORDS.search(frame) and not PRESENTER.search(frame):
        # "a video that visually tells the story", "based on a text description": scenes, even with a voice-over
        asked.unoffered.append(_made_of(kinds))
        named.remove(default)
    elif default in named and kinds.count("image") > 1 and not PRESENTER.search(frame):
        asked.unoffered.append(SLIDESHOW)  # a video from several pictures: a slideshow, not one face speaking
        named.remove(default)
    if parts and default not in named:  # the video is declined: so is what it would have been made of or changed
        named = [n for n in named if n not in parts]
    # "video" in "upscale this video" or "narrate this video" names the attachment, not a video to make
    named = [n for n in named if not _names_attachment(n, vocab, frame, kinds, named)]
    for name in named:  # "upscale this video" with no video attached
        base = vocab.deliverables[name].base_type
        if base and base not in kinds and base in THIS_KIND and THIS_KIND[base].search(frame):
            asked.problem = (f"I see no attached {base}: attach the {base} to {vocab.deliverables[name].does} "
                             "(services cannot download links).")
            return asked
    others = [n for n in named if n != speaking]
    # the one deliverable the attachments make together ("sync this voice-over with this video"), also when
    # something else asked is left out ("stabilise it, then sync ..."): then only when the goal joins them
    joined = COMBINE.search(frame) is not None and not {SCENE_VIDEO, PICTURE_VIDEO, SLIDESHOW} & set(asked.unoffered)
    if not others and attachments and (not asked.unoffered or joined) and (named or joined or CREATE.search(frame)):
        implied = _taking(vocab, set(kinds) | ({"audio"} if named else set()))
        if implied:
            named.append(implied)
    if not named:
        return asked
    asked.deliverables = _in_order(named, vocab, frame)
    asked.problem = _bind(asked, attachments, vocab, goal, said)
    return asked


def _made_of(kinds: list[str]) -> str:
    """What a video no service makes would have been: a slideshow of the pictures attached, one picture set in
    motion, or scenes from words."""
    pictures = kinds.count("image")
    return SLIDESHOW if pictures > 1 else PICTURE_VIDEO if pictures else SCENE_VIDEO


def _translation(frame: str, said: str | None, kinds: list[str]) -> bool:
    """Whether the words given (quoted, or a text file) are asked for in another language than theirs: the frame
    names two languages ("my Spanish article ... an English script"), or one the words' own letters are not."""
    if said is None and "text" not in kinds:
        return False
    languages = set(mentioned_languages(frame))
    own = script_language(said) if said else None
    if len(languages) != 1 or own is None:
        return len(languages) > 1
    return not languages <= WRITTEN_IN.get(own, {own})


def _voice_over_pictures(frame: str, kinds: list[str], vocab: Vocabulary) -> bool:
    """Whether the goal asks for a new video with a voice-over or narration and no one on screen: no video to put
    it on is attached, and no face, presenter or speaking is named."""
    default = vocab.deliverables[vocab.default() or ""]
    return ("video" not in kinds and default.cue is not None and default.cue.search(frame) is not None
            and VOICE_OVER.search(frame) is not None and PRESENTER.search(frame) is None
            and OWN_VIDEO.search(frame) is None)  # "a voice-over on my video": the video is missing, not scenes


def _purpose(name: str, named: list[str], vocab: Vocabulary, frame: str) -> bool:
    """Whether `name` is only what another deliverable is for: "a script for a 1-minute video" asks for a script."""
    cue = vocab.deliverables[name].cue
    for other in named:
        other_cue = vocab.deliverables[other].cue
        if other == name or other_cue is None or cue is None:
            continue
        for m in other_cue.finditer(frame):
            for skip in range(4):
                after = re.match(rf"\s+for\s+(?:[\w'-]+\s+){{{skip}}}", frame[m.end():])
                if after and cue.match(frame, m.end() + after.end()):
                    return True
    return False


def _names_attachment(name: str, vocab: Vocabulary, frame: str, kinds: list[str], named: list[str]) -> bool:
    """Whether `name` (a maker) was named only by words that point at an attachment of its output type
    ("this video" with a video attached; "a video" when the maker cannot use the attached one), or a transformer
    of that attached type is named beside it."""
    d = vocab.deliverables[name]
    if d.base is not None or d.output_type not in kinds or d.cue is None:
        return False
    if any(vocab.deliverables[n].base_type == d.output_type for n in named):
        return True
    this = THIS_KIND.get(d.output_type)
    spans = [m.span() for m in this.finditer(frame)] if this else []
    # "I have a video (clip.mp4)": a maker that cannot use the attached file, named only by its kind's plain noun
    plain = PLAIN_NOUN.get(d.output_type) if d.output_type not in d.consumes else None
    return all(any(a <= m.start() and m.end() <= b for a, b in spans) or (plain and plain.fullmatch(m.group(0)))
               for m in d.cue.finditer(frame))


def _taking(vocab: Vocabulary, kinds: set[str]) -> str | None:
    """The one deliverable that takes all of these data types (attachments and speech), if exactly one does."""
    fits = [d.name for d in vocab.deliverables.values() if d.base is None and kinds <= d.consumes]
    fits += [d.name for d in vocab.deliverables.values() if d.base is not None and d.base_type in kinds
             and kinds - {d.base_type} and kinds - {d.base_type} <= set(vocab.takes(d.name))]
    return fits[0] if len(fits) == 1 else None


def _listed(name: str, vocab: Vocabulary, frame: str) -> bool:
    """Whether the goal lists `name` as one more thing: its cue after "and", "plus", "also"."""
    also = AND_ALSO.search(frame)
    cue = vocab.deliverables[name].cue
    return also is not None and cue is not None and cue.search(frame, also.end()) is not None


def _in_order(named: list[str], vocab: Vocabulary, frame: str) -> list[str]:
    """Drop what another deliverable makes on the way (speech inside a talking video), unless the goal lists
    it as one more thing ("... and a poster"); a transformer comes after what makes its input."""
    kept = []
    for n in named:
        d = vocab.deliverables[n]
        inside = [m for m in named if m != n and vocab.deliverables[m].base_type != d.output_type
                  and d.output_type in vocab.consumes_all(m)]
        listed = _listed(n, vocab, frame)
        if not inside or (listed and d.base is None and d.output_type != "audio" and d.output_type != "text"):
            kept.append(n)
    makers = [n for n in kept if vocab.deliverables[n].base is None]
    changers = [n for n in kept if vocab.deliverables[n].base is not None]
    return makers + changers


def _bind(asked: Asked, attachments: list[Attachment], vocab: Vocabulary, goal: str, said: str | None) -> str | None:
    """Bind the attachments to the inputs the deliverables take; the problem when one cannot be planned."""
    wanted: set[str] = set()
    for n in asked.deliverables:
        wanted |= vocab.consumes_all(n) | vocab.deliverables[n].consumes
    images = [a for a in attachments if a.kind == "image"]
    videos = [a for a in attachments if a.kind == "video"]
    audios = [a for a in attachments if a.kind == "audio"]
    texts = [a for a in attachments if a.kind == "text"]
    if texts and said is None and any("text" in vocab.consumes_all(n) | vocab.takes(n) for n in asked.deliverables):
        asked.text_file = texts[0].id  # the file's words are what is said (or the subtitles)
    if images and "image" in wanted:
        asked.portrait = images[0].id
    if videos and "video" in wanted:
        asked.source_video, asked.clips = videos[0].id, [v.id for v in videos[1:]]
    if audios and "audio" in wanted:
        cue = next((att.cue for _, att in vocab.takes_attachment("audio") if att.cue), None)
        if cue and re.search(cue, goal, re.I):
            ref = REFERENCE.search(goal)
            if ref is None:
                return (f"To speak in the voice of {_name(audios[0])} I need its exact words, in quotes: "
                        "the recording says \"...\".")
            asked.voice_sample, asked.voice_words = audios[0].id, ref.group(1).strip()
        elif said is None:
            asked.soundtrack = audios[0].id
    made = {vocab.deliverables[n].output_type for n in asked.deliverables if vocab.deliverables[n].base is None}
    for n in asked.deliverables:
        d = vocab.deliverables[n]
        if d.base_type and d.base_type not in made and not any(a.kind == d.base_type for a in attachments):
            other = next((a for a in attachments if a.kind != d.base_type), None)
            got = f"; {_name(other)} is {KIND_WORDS.get(other.kind, other.kind)}" if other else ""
            return f"To {d.does} I need {KIND_WORDS.get(d.base_type, d.base_type)}{got}: attach one."
        if d.base_type and d.base_type not in made and said is None and asked.text_file is None \
                and "text" in vocab.takes(n):
            return (f"To {d.does} I need the words: give them in quotes, e.g. \"...\" (I cannot transcribe them "
                    "from the file itself).")
        if d.base_type and d.base_type not in made and said is None and "audio" in vocab.takes(n) \
                and asked.soundtrack is None and not TOPIC_MARKER.search(goal):
            return (f"To {d.does} I need what it says: give the words in quotes, say what it is about, or attach "
                    "the recording.")
    return None


def bound(deliverables: list[str], attachments: list[Attachment], vocab: Vocabulary, goal: str,
          said: str | None) -> dict[str, object]:
    """The intent's attachment fields for deliverables read elsewhere (a model's answer): which file fills what."""
    asked = Asked(deliverables=[d for d in deliverables if d in vocab.deliverables])
    _bind(asked, attachments, vocab, goal, said)
    return {"portrait": asked.portrait, "source_video": asked.source_video, "clips": asked.clips,
            "soundtrack": asked.soundtrack, "text_file": asked.text_file, "voice_sample": asked.voice_sample,
            "voice_words": asked.voice_words}


def input_problem(goal: str, attachments: list[Attachment], vocab: Vocabulary) -> str | None:
    """A reply for attachments that cannot be used: one the goal names is not there, or no service reads its type."""
    named = {a.name for a in attachments if a.name}
    for m in FILE_NAMED.finditer(goal):
        if OUTPUT_NAME.search(goal, 0, m.start()):  # "save the output as 'out.wav'": a name to give, not a file
            continue
        if m.group(1) not in named:
            return (f"I see no attached file named {m.group(1)!r}. Attach it (drop it into the message or use the "
                    "paperclip), then ask again.")
    if not attachments and ATTACHED_WORDS.search(goal):
        return ("I see no attached file. Attach it (drop it into the message or use the paperclip), then ask again; "
                "services cannot download links.")
    for a in attachments:
        if not vocab.takes_attachment(a.kind):
            readable = sorted({f"{KIND_WORDS.get(k, k)} ({att.role})" for (sid, n), att in vocab.attachable.items()
                               for k in [vocab.manifest.services[sid].inputs[n]]})
            return (f"I cannot use {_name(a)}: no service reads {KIND_WORDS.get(a.kind, a.kind)} files. "
                    f"Attachments I can use: {'; '.join(readable)}.")
    return None


def _name(a: Attachment) -> str:
    return repr(a.name) if a.name else f"attachment {a.id}"
