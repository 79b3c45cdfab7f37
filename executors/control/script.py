"""llm.generate_script: a spoken script (title, narration, stage description) from Ollama's structured output."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from spinbot import estimates
from spinbot.checks import Check, find
from spinbot.errors import SpinbotError
from spinbot.llm import (
    CTX_MARGIN_TOKENS,
    LLMCutOff,
    LLMGarbage,
    LLMPromptTooLong,
    LLMResult,
    num_ctx_for,
    probe,
    prompt_tokens_for,
    structured_chat,
)
from spinbot.manifest import ConstraintCheck, CostFeature, Offer, OutputSize, RetryPolicy
from spinbot.prompts import render
from spinbot.registry import service
from spinbot.task import TaskContext

log = logging.getLogger(__name__)

PROMPT = "generate_script.v2.j2"
#: Speaking rate the script is sized for (a typical narrator; tts.synthesize defaults to 160).
WPM = 150
#: A narration this far from the target length (words, after `fit`) is sent back once with the finding:
#: the narration must last the asked seconds within 15 %.
LOW, HIGH = 0.85, 1.15
#: How much longer than the target the schema lets a narration be (`fit` then cuts it at a sentence end).
ROOM = 1.6
#: The schema's minLength of a narration: MIN_FILL x the target words at MIN_CHARS_PER_WORD characters each
#: (the 1.5B model's English averaged ~6.3 with the space; Spanish and Italian run shorter; German ~7.5, where 6
#: let a 10-s script stop at 19 of 25 words): a constrained decoder cannot close the string sooner, so a small
#: model that stops early (measured: 60-80 % of the target, also after being told) must go on.
MIN_FILL, MIN_CHARS_PER_WORD = 0.95, 6.0
LONG_WORD_LANGUAGES = {"de": 7.0, "nl": 6.5}
#: Sentences of ~12 words: a small model keeps a count of sentences far better than a count of words. A short
#: script asks for shorter ones (SHORT_SENTENCE x the target, at least MIN_SENTENCE words), so that `fit` finds a
#: sentence end within 15 % of the target (a 10-s script of 25 words: 3 sentences of ~8, not 2 of ~12).
WORDS_PER_SENTENCE, SHORT_SENTENCE, MIN_SENTENCE = 12, 0.3, 6
#: Answer sizing: the schema allows a narration of ROOM x the target words at CHARS_PER_WORD characters each
#: (space included; German and French words run long), and num_predict covers every character the schema
#: allows at a conservative CHARS_PER_TOKEN (2 for scripts whose letters cost more tokens) plus JSON syntax.
CHARS_PER_WORD = 7
CHARS_PER_TOKEN = 3
DENSE_LANGUAGES = {"ru": 2, "el": 2}
JSON_OVERHEAD_TOKENS = 64
#: Context kept free for a second try's feedback message (tokens).
FEEDBACK_TOKENS = 128
TITLE_MAX, STAGE_MAX = 80, 400
LANGUAGES = {
    "en": "English", "de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "pl": "Polish", "ru": "Russian", "tr": "Turkish", "sv": "Swedish", "el": "Greek",
}  # fmt: skip


class ScriptParams(BaseModel):
    topic: str = Field(min_length=1, max_length=2000, description="what the video is about")
    duration_s: float = Field(default=30, ge=5, le=600, description="target length of the narration in seconds")
    style: str = Field(default="informative", max_length=200, description="tone, e.g. informative, playful")
    language: str = Field(default="en", max_length=16, description="language of the narration, e.g. en, de")
    voice: Literal["female", "male"] = Field(default="female", description="the presenter's voice")


def target_words(duration_s: float) -> int:
    return max(8, round(duration_s * WPM / 60))


def sentences(words: int) -> int:
    """How many sentences a narration of `words` words is asked for (see WORDS_PER_SENTENCE)."""
    per = min(WORDS_PER_SENTENCE, max(MIN_SENTENCE, round(words * SHORT_SENTENCE)))
    return max(1, round(words / per))


def messages(p: ScriptParams) -> list[dict[str, str]]:
    values = {
        **p.model_dump(),
        "target_words": target_words(p.duration_s),
        "sentences": sentences(target_words(p.duration_s)),
        "sentence_words": round(target_words(p.duration_s) / sentences(target_words(p.duration_s))),
        "wpm": WPM,
        "language_name": LANGUAGES.get(p.language.split("-")[0], p.language),
    }
    return [
        {"role": "system", "content": render(PROMPT, part="system", **values)},
        {"role": "user", "content": render(PROMPT, part="user", **values)},
    ]


def min_chars_per_word(language: str) -> float:
    """Characters a word of `language` takes at least on average, with its space (see MIN_CHARS_PER_WORD)."""
    return LONG_WORD_LANGUAGES.get(language.split("-")[0], MIN_CHARS_PER_WORD)


def narration_max_chars(words: int) -> int:
    """The longest narration the schema allows (characters) for a target of `words` words."""
    return math.ceil(words * ROOM * CHARS_PER_WORD) + 100


def schema(p: ScriptParams) -> dict[str, Any]:
    """The answer's JSON schema; every string is bounded so a small model cannot ramble forever."""
    words = target_words(p.duration_s)
    return {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": TITLE_MAX},
            "narration": {"type": "string", "maxLength": narration_max_chars(words),
                          "minLength": max(10, math.floor(words * MIN_FILL * min_chars_per_word(p.language)))},
            "stage": {"type": "string", "minLength": 5, "maxLength": STAGE_MAX},
        },
        "required": ["title", "narration", "stage"],
        "additionalProperties": False,
    }


def chars_per_token(language: str) -> int:
    return DENSE_LANGUAGES.get(language.split("-")[0], CHARS_PER_TOKEN)


def num_predict_for(sch: dict[str, Any], language: str = "en") -> int:
    """Tokens that cover the longest answer `sch` allows: every string at its maxLength, plus JSON syntax.

    Sized with the schema so a model that uses all the room it is given is never cut off mid-JSON.
    """
    chars = sum(int(prop.get("maxLength", 0)) for prop in sch["properties"].values())
    return math.ceil(chars / chars_per_token(language)) + JSON_OVERHEAD_TOKENS


def sized(p: ScriptParams, max_ctx: int) -> tuple[dict[str, Any], int]:
    """The answer's schema and num_predict (tokens), sized together to fit a context of max_ctx tokens.

    num_predict always covers the longest answer the schema allows. When that would not fit next to the
    prompt (and the room a second try's feedback needs), the narration's maxLength shrinks to what fits;
    raises LLMPromptTooLong when even ~110 % of the target length would not.
    """
    sch = schema(p)
    num_predict = num_predict_for(sch, p.language)
    room = max_ctx - prompt_tokens_for(messages(p)) - CTX_MARGIN_TOKENS - FEEDBACK_TOKENS
    if num_predict <= room:
        return sch, num_predict
    words = target_words(p.duration_s)
    narration = (room - JSON_OVERHEAD_TOKENS) * chars_per_token(p.language) - TITLE_MAX - STAGE_MAX
    if narration < words * CHARS_PER_WORD * 1.1:
        raise LLMPromptTooLong(
            f"a {p.duration_s:g} s script (~{words} words) needs an answer of ~{num_predict} tokens, more than a "
            f"context of {max_ctx} tokens leaves room for",
            hint="ask for a shorter duration_s, or raise SPINBOT_OLLAMA_NUM_CTX_MAX if the model and memory allow",
        )
    sch["properties"]["narration"]["maxLength"] = narration
    return sch, num_predict_for(sch, p.language)


def clean(text: str) -> str:
    """Spoken text only: markdown emphasis, bullets and bracketed stage directions removed."""
    text = re.sub(r"\[[^\]]*\]|\([^)]*(?:pause|music|smiles?|laughs?)[^)]*\)", " ", text, flags=re.I)
    text = re.sub(r"[*_#`>~]+", " ", text)
    text = re.sub(r"^\s*[-•]\s*", "", text, flags=re.M)
    return " ".join(text.split())


#: Where a narration may end: after a sentence, or (when no sentence end is within 15 % of the target) after a
#: clause, whose comma, semicolon or dash becomes a full stop.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
CLAUSE_END = re.compile(r"\s*[,;:–—]\s+")


def fit(narration: str, words: int) -> str:
    """Cut a too-long narration (over HIGH x `words`) where it comes closest to `words` words.

    A sentence end within LOW..HIGH x `words` wins; else a clause end within them (ended with a full stop:
    a 10-s script of three 10-word sentences has no sentence end in 22..28 words); else the sentence end
    closest to the target.
    """
    if len(narration.split()) <= words * HIGH:
        return narration

    def ends(pattern: re.Pattern[str]) -> list[tuple[int, str]]:
        cuts = [(len(narration[: m.start()].split()), narration[: m.start()].rstrip(",;:–— ")) for m in
                pattern.finditer(narration)]
        return [(n, text if text.endswith((".", "!", "?")) else text + ".") for n, text in cuts if n]

    sentences, clauses = ends(SENTENCE_END), ends(CLAUSE_END)
    for cuts in (sentences, clauses):
        inside = [(abs(n - words), text) for n, text in cuts if LOW * words <= n <= HIGH * words]
        if inside:
            return min(inside)[1]
    closest = [(abs(n - words), text) for n, text in sentences]
    return min(closest)[1] if closest else narration


@dataclass(frozen=True, slots=True)
class Draft:
    """One answer, cleaned: title, the narration as it would be spoken (after `clean` and `fit`), stage."""

    title: str
    narration: str
    stage: str
    result: LLMResult

    @property
    def words(self) -> int:
        return len(self.narration.split())


def draft_of(result: LLMResult, words: int) -> Draft:
    data = result.data if isinstance(result.data, dict) else {}
    return Draft(
        title=" ".join(str(data.get("title", "")).split()),
        narration=fit(clean(str(data.get("narration", ""))), words),
        stage=" ".join(str(data.get("stage", "")).split()),
        result=result,
    )


def finding(draft: Draft, p: ScriptParams) -> str | None:
    """What to tell the model about a draft that misses the brief (no title, wrong length), else None."""
    words = target_words(p.duration_s)
    if not draft.title:
        return "your answer has no title; write the whole script again with a short title"
    if LOW * words <= draft.words <= HIGH * words:
        return None
    if draft.words > HIGH * words:  # a small model keeps a count of sentences, not of words: shorter sentences
        n = sentences(words)
        return (
            f"your narration has {draft.words} words; the target is ~{words} words ({p.duration_s:g} s at {WPM} wpm); "
            f"write it again shorter: {n} sentences of at most {max(MIN_SENTENCE - 2, words // n)} words each"
        )
    return (
        f"your narration has {draft.words} words; the target is ~{words} words "
        f"({p.duration_s:g} s at {WPM} wpm); write it again at that length"
    )


def distance(draft: Draft | None, words: int) -> float:
    """How far a draft's narration is from the target length (|log ratio|, 0 = on target); unusable: inf."""
    if draft is None or not draft.narration or not draft.title:
        return math.inf
    return abs(math.log(draft.words / words))


async def check_script(ctx: TaskContext, p: ScriptParams, out: dict[str, Any]) -> list[Check]:
    """The narration's word count against the target for p.duration_s."""
    n, words = len(str(out.get("narration", "")).split()), target_words(p.duration_s)
    ok = LOW * words <= n <= HIGH * words
    said = f"{n} words (about {n * 60 / WPM:.0f} s at {WPM} words a minute)"
    return [Check("word_count", n, "words", ok, f"{said}, the target ~{words} for {p.duration_s:g} s" if ok else
                  f"the script has {said}, not the ~{words} that {p.duration_s:g} s needs")]


#: A refined script asks for at most this many times the length (a model that wrote 3 words for 50).
MOST_LONGER = 3.0


def refine_script(p: ScriptParams, found: list[Check]) -> tuple[dict[str, Any], str] | None:
    """A script too short for its length is written once more, asked for proportionally more."""
    count, words = find(found, "word_count"), target_words(p.duration_s)
    if count is None or count.ok is not False or not isinstance(count.value, int) or count.value >= words:
        return None
    longer = round(min(600.0, p.duration_s * min(MOST_LONGER, words / max(1, count.value))), 1)
    return {"duration_s": longer}, (f"the script has {count.value} words, not ~{words}: asking for a longer one "
                                    f"(sized for {longer:g} s)")


@service(
    "llm.generate_script",
    planes=["control"],
    description=(
        "Writes a script for a short spoken video about `topic`: a title, the narration (what the presenter "
        "says, sized for duration_s at ~150 words per minute, in `language`) and a stage description of the "
        "presenter and setting (a prompt for image.render). Outputs title, narration, stage and the whole script."
    ),
    params=ScriptParams,
    inputs={"topic": "text"},
    outputs={"title": "text", "narration": "text", "stage": "text", "script": "json"},
    duration_s=20.0,
    memory_mb=0,
    features=(CostFeature(name="seconds of narration", of=["params.duration_s"], typical=30),),
    predicts={"narration": OutputSize(of=["params.duration_s"], scale=WPM / 60 * estimates.CHARS_PER_WORD)},
    engine=("ollama_model",),  # the engine these choose is part of the node cache key
    deterministic=False,  # a model samples: a regenerate asks it again (spinbot.nodecache)
    retry=RetryPolicy(max_attempts=3, backoff_s=2.0),
    timeout_s=300,
    constraints={"max_duration_s": ConstraintCheck(param="duration_s", op="<=")},
    probe=probe,  # while no LLM answers, the live manifest leaves this service out and says why
    offers=(Offer(deliverable="script", does="write a script for a short spoken video", output="narration",
                  cues=[r"script|screenplay|narration text|write (?:me )?(?:a|the) (?:text|story|script)"]),),
    version="2",  # 2: outputs carry their checks
    checks=check_script,
    measures=("word_count",),
    refine=refine_script,
)
async def generate_script(ctx: TaskContext, p: ScriptParams) -> dict[str, Any]:
    words = target_words(p.duration_s)
    draft = await write(ctx, p)
    title, narration, stage, result = draft.title, draft.narration, draft.stage, draft.result
    if not stage:
        stage = f"a friendly {p.voice} presenter talking about {p.topic}, studio light"
    n_words = draft.words
    script = {
        "title": title,
        "narration": narration,
        "stage": stage,
        "topic": p.topic,
        "style": p.style,
        "language": p.language,
        "voice": p.voice,
        "words": n_words,
        "target_words": words,
        "estimated_duration_s": round(n_words / WPM * 60, 1),
        "model": result.model,
        "llm_s": round(result.duration_s, 2),
    }
    await ctx.log(
        f"script: {title!r}, {n_words} words (~{script['estimated_duration_s']} s) in {result.duration_s:.1f} s"
    )
    await ctx.progress(1.0, f"{n_words} words")
    return {"title": title, "narration": narration, "stage": stage, "script": script}


def fits(asked: list[dict[str, str]], num_predict: int, max_ctx: int) -> bool:
    try:
        num_ctx_for(asked, num_predict, max_ctx)
    except LLMPromptTooLong:
        return False
    return True


async def write(ctx: TaskContext, p: ScriptParams) -> Draft:
    """Ask for the script; a cut-off, unparsable, untitled or badly sized answer is sent back once with the finding.

    Returns the draft closer to the target length (the corrected one on a tie), logging when even that
    one is off. Raises LLMGarbage when no answer has a title and a narration; the first call's other
    errors (LLMUnavailable, LLMTimeout, LLMPromptTooLong...) propagate as they are.
    """
    words = target_words(p.duration_s)
    max_ctx = ctx.settings.ollama_num_ctx_max
    sch, num_predict = sized(p, max_ctx)
    asked = messages(p)
    await ctx.progress(0.05, f"asking {ctx.settings.ollama_model} for ~{words} words")
    first: Draft | None = None
    problem: str | None
    try:
        first = draft_of(await structured_chat(ctx.settings, asked, sch, num_predict=num_predict), words)
    except LLMGarbage as e:
        what = "was cut off before the JSON object was complete" if isinstance(e, LLMCutOff) else "was not valid JSON"
        problem = f"your answer {what}; answer again with one complete JSON object, the narration about {words} words"
    else:
        problem = finding(first, p)
        if problem is None:
            return first
        with_answer = [*asked, {"role": "assistant", "content": first.result.raw}]
        if fits([*with_answer, {"role": "user", "content": problem}], num_predict, max_ctx):
            asked = with_answer  # the model sees what it wrote (a long one may not fit: then the finding alone)
    log.info("llm.generate_script asks again: %s", problem)
    await ctx.log(f"script: asking again: {problem}")
    await ctx.progress(0.5, "asking again")
    try:
        result = await structured_chat(
            ctx.settings, [*asked, {"role": "user", "content": problem}], sch, num_predict=num_predict
        )
    except SpinbotError as e:
        if first is None or distance(first, words) == math.inf:
            raise
        await ctx.log(f"script: the second answer failed ({e.message}); keeping the first")
        return first
    second = draft_of(result, words)
    best = first if first is not None and distance(first, words) < distance(second, words) else second
    if distance(best, words) == math.inf:
        missing = "narration" if not best.narration else "title"
        raise LLMGarbage(f"the script has no {missing}, asked twice: {best.result.raw[:200]!r}")
    if finding(best, p) is not None:
        note = f"the narration has {best.words} words, the target ~{words}; keeping the closer of two answers"
        log.warning("llm.generate_script: %s", note)
        await ctx.log(f"script: {note}")
    return best
