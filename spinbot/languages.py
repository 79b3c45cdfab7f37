"""Language names in goals ("in Yoruba", "in Scottish Gaelic") as ISO 639 codes.

The names are ISO 639-1's (the 184 languages with a two-letter code, English names from pycountry's ISO 639-3
data), plus the few other names people commonly write for them or for a language a user may ask for that
has no two-letter code (Klingon, Cantonese). Whether a voice speaks the language is the speaking service's
business: eSpeak NG refuses a language it has no voice for, and the answer says so.
"""

from __future__ import annotations

import functools
import re

import pycountry

#: Names people write beside ISO 639's English names (code: the language's ISO 639 code).
ALIASES = {"greek": "el", "farsi": "fa", "punjabi": "pa", "pashto": "ps", "filipino": "tl", "mandarin": "zh",
           "flemish": "nl", "castilian": "es", "kyrgyz": "ky", "uyghur": "ug", "sinhalese": "si",
           "gaelic": "gd", "cantonese": "yue", "klingon": "tlh"}  # fmt: skip


@functools.cache
def names() -> dict[str, str]:
    """Lower-case language name -> ISO 639 code: ISO 639-1's names ("Spanish; Castilian" gives both,
    "Modern Greek (1453-)" gives "modern greek") and ALIASES."""
    out: dict[str, str] = {}
    for lang in pycountry.languages:
        code = getattr(lang, "alpha_2", None)
        if code is None:
            continue
        for name in re.split(r";\s*", lang.name):
            out[re.sub(r"\s*\(.*?\)", "", name).strip().lower()] = code
    return {**out, **ALIASES}


@functools.cache
def _in_language() -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n) for n in sorted(names(), key=len, reverse=True))
    return re.compile(rf"\bin (?:the )?({alternatives})(?: language)?(?![\w-])", re.I)


def named_language(text: str) -> tuple[str, str] | None:
    """(ISO 639 code, the name as written) of the first language a text asks for with "in <name>", or None.

    >>> named_language("read this aloud in Yoruba: E kaaaro")
    ('yo', 'Yoruba')
    """
    m = _in_language().search(text)
    return (names()[m.group(1).lower()], m.group(1)) if m else None


@functools.cache
def _language_word() -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n) for n in sorted(names(), key=len, reverse=True) if len(n) > 3)
    return re.compile(rf"(?<![\w-])({alternatives})(?![\w-])", re.I)


def mentioned_languages(text: str) -> list[str]:
    """ISO 639 codes of every language a text names as a word ("a Spanish article", "an English script"), in
    order, repeats dropped; names of three letters or fewer (Lao, Ewe, Ido) are left out, being other words too.

    >>> mentioned_languages("my Spanish article as an English voice-over, in English")
    ['es', 'en']
    """
    found: list[str] = []
    for m in _language_word().finditer(text):
        code = names()[m.group(1).lower()]
        if code not in found:
            found.append(code)
    return found


def without_trailing_language(words: str) -> str:
    """Words to speak without a final "in <language>", which asks for the language ("say good morning in
    German" speaks "good morning"); the words unchanged when they do not end so."""
    found = list(_in_language().finditer(words))
    m = found[-1] if found else None
    if m is None or words[m.end():].strip(" .!?\"'”’") or m.start() == 0:
        return words
    return words[: m.start()].rstrip(" ,")


def display_name(code: str) -> str:
    """The English name of an ISO 639 code ('yo' -> 'Yoruba'); the code itself when unknown."""
    base = code.split("-")[0].lower()
    lang = pycountry.languages.get(alpha_2=base) if len(base) == 2 else pycountry.languages.get(alpha_3=base)
    return re.split(r"[;(]", lang.name)[0].strip() if lang is not None else code
