"""llm.generate_script: a spoken script (title, narration, stage description) from Ollama's structured output."""

from __future__ import annotations

import logging
import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from spinbot.llm import LLMGarbage, structured_chat
from spinbot.manifest import ConstraintCheck, RetryPolicy
from spinbot.prompts import render
from spinbot.registry import service
from spinbot.task import TaskContext

log = logging.getLogger(__name__)

PROMPT = "generate_script.v1.j2"
#: Speaking rate the script is sized for (a typical narrator; tts.synthesize defaults to 160).
WPM = 150
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


def messages(p: ScriptParams) -> list[dict[str, str]]:
    values = {
        **p.model_dump(),
        "target_words": target_words(p.duration_s),
        "wpm": WPM,
        "language_name": LANGUAGES.get(p.language.split("-")[0], p.language),
    }
    return [
        {"role": "system", "content": render(PROMPT, part="system", **values)},
        {"role": "user", "content": render(PROMPT, part="user", **values)},
    ]


def schema(p: ScriptParams) -> dict[str, Any]:
    """The answer's JSON schema; every string is bounded so a small model cannot ramble forever."""
    words = target_words(p.duration_s)
    return {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 80},
            "narration": {"type": "string", "minLength": 10, "maxLength": int(words * 7 * 1.5) + 100},
            "stage": {"type": "string", "minLength": 5, "maxLength": 400},
        },
        "required": ["title", "narration", "stage"],
        "additionalProperties": False,
    }


def clean(text: str) -> str:
    """Spoken text only: markdown emphasis, bullets and bracketed stage directions removed."""
    text = re.sub(r"\[[^\]]*\]|\([^)]*(?:pause|music|smiles?|laughs?)[^)]*\)", " ", text, flags=re.I)
    text = re.sub(r"[*_#`>~]+", " ", text)
    text = re.sub(r"^\s*[-•]\s*", "", text, flags=re.M)
    return " ".join(text.split())


def fit(narration: str, words: int) -> str:
    """Cut a much-too-long narration at a sentence end near 120 % of the target length."""
    if len(narration.split()) <= words * 1.3:
        return narration
    out: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", narration):
        if out and len(" ".join([*out, sentence]).split()) > words * 1.2:
            break
        out.append(sentence)
    return " ".join(out)


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
    retry=RetryPolicy(max_attempts=3, backoff_s=2.0),
    timeout_s=300,
    constraints={"max_duration_s": ConstraintCheck(param="duration_s", op="<=")},
)
async def generate_script(ctx: TaskContext, p: ScriptParams) -> dict[str, Any]:
    words = target_words(p.duration_s)
    await ctx.progress(0.05, f"asking {ctx.settings.ollama_model} for ~{words} words")
    result = await structured_chat(ctx.settings, messages(p), schema(p), num_predict=min(4096, int(words * 2.2) + 200))
    data = result.data if isinstance(result.data, dict) else {}
    title = " ".join(str(data.get("title", "")).split())
    narration = fit(clean(str(data.get("narration", ""))), words)
    stage = " ".join(str(data.get("stage", "")).split())
    if not narration or not title:
        raise LLMGarbage(f"the script has no {'narration' if not narration else 'title'}: {result.raw[:200]!r}")
    if not stage:
        stage = f"a friendly {p.voice} presenter talking about {p.topic}, studio light"
    n_words = len(narration.split())
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
