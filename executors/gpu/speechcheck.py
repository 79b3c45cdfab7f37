"""Does a recording say its reference text? PocketSphinx (CMU Sphinx, its bundled US-English model).

A free transcription by PocketSphinx's general language model gets too many words wrong (on eSpeak's
voices a third to nine tenths of them) to tell a matching sample from another. So it listens twice:
- with a grammar that allows any sequence of the reference text's words: speech that says the text
  comes out as its words in its order, other speech as the text's words scattered. The score is the
  F1 of the words heard in order (longest common subsequence) against the text, tolerant of misheard words;
- forcing an alignment of the text onto the audio, which only succeeds when the speech says it.
A sample matches when the alignment succeeds or the score reaches MIN_MATCH. `listen` (the speech
check of tts.synthesize) aligns first and runs the word loop, with narrower beams, only when that fails.
"""

from __future__ import annotations

import contextlib
import math
import queue
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from spinbot.errors import EngineUnavailable, PermanentError

#: The least score that passes without an alignment (check()). Measured on 6 eSpeak voices x 4 sentences (each
#: sample against its own text and the 3 others): matching samples scored 0.58-0.83 (the shrill f4
#: variant 0.35-0.58), samples of another sentence 0.17-0.46. With each search's CMN started from the
#: recording's own means (own_cmn), on the f2, m2 (3 takes), m3 and f3 voices x 3 sentences of
#: tests/tasks/test_voice.py: matching samples 0.64-0.97 (15 of 18 aligned; with the model's default CMN the m2
#: voice's first sentence scored 0.55-0.62), others 0.20-0.40 (0 of 36 aligned).
MIN_MATCH = 0.55
#: Fewer checkable words than this and no score means anything.
MIN_WORDS = 3
RATE = 16_000
#: Common English words (function words and frequent verbs/nouns) that non-matching speech can fall on.
DISTRACTORS = """a about after all also an and any as at back be because but by can come could day do
even first for from get give go good have he her him his how i if in into it its just know like look make
me most my new no not now of on one only or other our out over people say see she so some take than that
the their them then there these they think this time to two up us use want way we well what when which
who will with work would year you your red blue green house water money small large long great little old
right big high next early young few bad same""".split()


@dataclass(frozen=True, slots=True)
class Match:
    transcript: str
    score: float
    aligned: bool

    @property
    def ok(self) -> bool:
        return self.aligned or self.score >= MIN_MATCH


def words(text: str) -> list[str]:
    """Lower-case words of a text (letters, digits and inner apostrophes)."""
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)*", text.lower())


def lcs(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two word lists."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def decoder(**config: Any) -> Any:
    try:
        import pocketsphinx
    except ImportError as e:
        raise EngineUnavailable("PocketSphinx is not installed", hint="pip install pocketsphinx") from e
    return pocketsphinx.Decoder(samprate=RATE, lm=None, loglevel="FATAL", **config)


def probe(settings: Any) -> str | None:
    """Service probe: the check needs PocketSphinx."""
    try:
        decoder()
    except EngineUnavailable as e:
        return f"{e.message} ({e.hint})"
    return None


def _decode(d: Any, samples: np.ndarray, should_stop: Callable[[], bool], *, whole: bool = False) -> Any:
    """Run the active search over float samples; its best hypothesis or None. `whole`: in one call, as a
    decoder with batch CMN needs; else in 2 s pieces (a cancelled job stops within one)."""
    pad = np.zeros(RATE // 4, dtype=np.float32)  # the search wants silence at both ends
    pcm = (np.clip(np.concatenate([pad, samples, pad]), -1, 1) * 32767).astype(np.int16)
    if should_stop():
        return None
    d.start_utt()
    if whole:
        d.process_raw(pcm.tobytes(), False, True)
    else:
        step = RATE * 2
        for i in range(0, len(pcm), step):
            if should_stop():
                break
            d.process_raw(pcm[i : i + step].tobytes(), False, False)
    d.end_utt()
    return d.hyp()


#: Batch cepstral mean normalisation: the mean of the whole recording, decoded in one call (decoded in pieces,
#: PocketSphinx normalises by a running mean, live CMN), so a reused decoder's verdict does not depend on what
#: it heard before (with live CMN one 29-s recording aligned or not depending on the one before).
BATCH_CMN = {"cmn": "batch"}
#: Alignment decoders not lent at the moment (see aligner()).
_idle: queue.SimpleQueue[Any] = queue.SimpleQueue()


@contextlib.contextmanager
def aligner() -> Iterator[Any]:
    """A batch-CMN decoder for alignments, lent to one caller at a time. Loading the acoustic model (0.2 s) takes
    about as long as aligning 15 s of speech, so decoders are kept for the process and shared by all its
    threads (one per thread loaded the model again in each of the thread pool's threads); one is made when
    all are lent."""
    try:
        d = _idle.get_nowait()
    except queue.Empty:
        d = decoder(**BATCH_CMN)
    try:
        yield d
    finally:
        _idle.put(d)


def reference_words(d: Any, text: str) -> list[str]:
    """The text's words the recogniser knows; PermanentError when fewer than MIN_WORDS."""
    reference = [w for w in words(text) if d.lookup_word(w)]
    if len(reference) < MIN_WORDS:
        raise PermanentError(
            f"the reference text cannot be checked: only {len(reference)} of its words are English words "
            "the speech recogniser knows",
            hint="voice samples are checked in English: record an English text and give its words",
        )
    return reference


def loop_score(samples: np.ndarray, reference: list[str], should_stop: Callable[[], bool], expected: int | None = None,
               *, batch: bool = False, cmn: str | None = None, **config: Any) -> tuple[str, float]:
    """(words heard, F1 of the words heard in order against `reference`) with the any-order word grammar.
    `expected`: how many of the reference's words the samples can hold (an excerpt's share), for the recall;
    `batch`: with batch CMN (listen()), else with live CMN starting from `cmn` (check(): own_cmn())."""
    d = decoder(**(BATCH_CMN if batch else {}), **config)
    if cmn is not None:
        d.set_cmn(cmn)
    grammar = "#JSGF V1.0;\ngrammar loop;\npublic <s> = <w>*;\n<w> = " + " | ".join(sorted(set(reference))) + ";\n"
    d.add_jsgf_string("loop", grammar)
    d.activate_search("loop")
    hyp = _decode(d, samples, should_stop, whole=batch)
    heard = hyp.hypstr.split() if hyp else []
    common = lcs(heard, reference)
    recall, precision = min(1.0, common / (expected or len(reference))), common / max(1, len(heard))
    return " ".join(heard), (2 * recall * precision / (recall + precision) if common else 0.0)


def aligns(samples: np.ndarray, reference: list[str], should_stop: Callable[[], bool], d: Any, *,
           whole: bool) -> bool:
    """Whether a forced alignment of `reference` onto the samples succeeds on decoder `d`: `whole` for an
    aligner() (batch CMN needs the recording in one call), else in pieces (live CMN, check())."""
    d.set_align_text(" ".join(reference))
    return _decode(d, samples, should_stop, whole=whole) is not None


def own_cmn(samples: np.ndarray, should_stop: Callable[[], bool]) -> str:
    """The live CMN estimate (PocketSphinx's cepstral means, as set_cmn takes them) after one pass over the
    samples on a fresh decoder: where check()'s searches start, so they start from this recording's own means
    rather than the model's default (40,3,-1), on which a deep male voice's own text scored 0.55-0.62."""
    d = decoder()
    d.set_align_text("the")  # a search is needed for the pass; one word costs little (0.06 s for 30 s)
    _decode(d, samples, should_stop)
    return str(d.get_cmn(True))


def check(samples: np.ndarray, rate: int, text: str, should_stop: Callable[[], bool] = lambda: False) -> Match:
    """Listen to float samples at `rate` (must be RATE) for `text` (voice.prepare's check of a voice sample).
    Each search runs on a fresh decoder whose live CMN starts from the recording's own means (own_cmn), so
    the verdict on a recording is the same whatever the process decoded before. PermanentError when too
    few of the text's words are English words the recogniser knows."""
    assert rate == RATE, "the recogniser's model is 16 kHz"
    reference = reference_words(decoder(), text)
    cmn = own_cmn(samples, should_stop)
    heard, score = loop_score(samples, reference, should_stop, cmn=cmn)
    d = decoder()
    d.set_cmn(cmn)
    return Match(heard, score, aligns(samples, reference, should_stop, d, whole=False))


#: Narrower search beams than PocketSphinx's defaults (beam 1e-48, wbeam 7e-29) and every second frame:
#: the word loop of 9.5 s of eSpeak speech took 6 s instead of 22 s (2 cores, loaded) at about the same
#: scores (0.65 vs 0.71 for the text spoken, 0.24 vs 0.25 for another).
FAST: dict[str, Any] = {"beam": 1e-30, "wbeam": 1e-20, "ds": 2}
#: A text of fewer words than this aligns too easily with other speech (with batch CMN an 8-word Harvard
#: sentence aligned onto another one's speech): it also needs the word loop's score. Chosen on Harvard lists
#: 1-2; on lists 3-4 (held out) 40/40 own texts passed and 40/40 other texts were caught.
ALIGN_ALONE_WORDS = 12
#: A word-loop score that passes without an alignment: on Harvard lists 1-2 another sentence's speech
#: scored up to 0.62; 5 words spoken by the male voice that did not align scored 0.80.
LOOP_ALONE = 0.75
#: The word loop listens to at most this much speech (s): its search grows with the text's words and the
#: speech's length (29 s of eSpeak speech of a 100-word text that did not align took 115 s, loaded).
LOOP_S = 6.0
#: The excerpt's share of the text is taken with this margin, as speech is not spoken at an even rate.
LOOP_MARGIN = 1.3


def listen(samples: np.ndarray, rate: int, text: str, should_stop: Callable[[], bool] = lambda: False) -> Match:
    """Whether speech Spinbot made says `text`, cheaper than check() and stricter: the forced alignment
    (under a second for 10 s of speech) is the verdict; a text under ALIGN_ALONE_WORDS words also needs a
    word-loop score of MIN_MATCH. The word loop (FAST beams) runs only then or when the alignment fails,
    to say what was heard, over at most LOOP_S of the speech; on its own it never passes (on 7-9-word
    sentences another sentence's words scored up to 0.62) unless it reaches LOOP_ALONE. Both searches use
    batch CMN, so the verdict on a recording is the same whatever the process heard before (bench/checks.py:
    78/80 Harvard sentences pass their own text, 80/80 are caught against the next one's). `Match.ok` is
    check()'s verdict; use `heard()`. An aligned text of ALIGN_ALONE_WORDS words or more has score 1.0 and no
    transcript. PermanentError as check()."""
    assert rate == RATE, "the recogniser's model is 16 kHz"
    with aligner() as d:
        reference = reference_words(d, text)
        aligned = aligns(samples, reference, should_stop, d, whole=True)
    if aligned and len(reference) >= ALIGN_ALONE_WORDS:
        return Match("", 1.0, True)
    part, words_in_part, expected = excerpt(samples, reference)
    heard, score = loop_score(part, words_in_part, should_stop, expected, batch=True, **FAST)
    return Match(heard, score, aligned)


def excerpt(samples: np.ndarray, reference: list[str]) -> tuple[np.ndarray, list[str], int]:
    """The first LOOP_S seconds of the samples, the text's words they may hold (LOOP_MARGIN more than their
    share) and their share (for the word loop's recall); the whole when shorter."""
    seconds = len(samples) / RATE
    if seconds <= LOOP_S:
        return samples, reference, len(reference)
    share = LOOP_S / seconds
    return (samples[: int(LOOP_S * RATE)], reference[: math.ceil(len(reference) * share * LOOP_MARGIN)],
            max(1, round(len(reference) * share)))


def heard(m: Match) -> bool:
    """listen()'s verdict: aligned (with MIN_MATCH for a short text), or a word-loop score of LOOP_ALONE."""
    return (m.aligned and m.score >= MIN_MATCH) or m.score >= LOOP_ALONE
