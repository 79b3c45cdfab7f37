"""The boundary rule for text: no NUL and no lone surrogate gets past an entry point.

Both are legal in a JSON string (`\\u0000`, `\\ud800`) and in a Python str, but Postgres text and
jsonb refuse them and UTF-8 cannot encode a lone surrogate, so a turn that carries one fails far
from where it came in. Text a client sent is refused with 422 naming the field (web/app.py's
TextCheck finds it with first_bad); text a model or a task wrote is cleaned (U+FFFD) with clean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

REPLACEMENT = "\ufffd"
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


#: A text file (an attachment whose words are spoken or subtitled) is at most this many bytes: a text param holds
#: up to 20,000 characters, and UTF-8 takes up to 4 bytes for one.
MAX_TEXT_FILE_BYTES = 80_000
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f\ud800-\udfff]")


def file_text(raw: bytes) -> str | None:
    """A text file's words: UTF-8 (a byte-order mark dropped), line ends as \\n; None when the bytes are not
    text (not UTF-8, or control characters other than tab, line and page breaks)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    if _CONTROL.search(text):
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def clean(s: str) -> str:
    """s with NUL characters and lone surrogates (U+D800-U+DFFF) replaced by U+FFFD; other text unchanged.

    Both are legal in a JSON string (`\\u0000`, `\\ud800`) but break Postgres text columns, UTF-8
    encoding and downstream tools.
    """
    return _BAD_CHARS.sub(REPLACEMENT, s)


def clean_value(value: Any) -> Any:
    """A JSON-like value (dicts, lists, tuples, strings, scalars) with every string, keys included, cleaned.

    Returns the same object when nothing needed cleaning, else a cleaned copy (tuples become lists).
    """
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(k) if isinstance(k, str) else k: clean_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_value(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class BadText:
    """Where a request carries text that cannot be stored: `field` is a JSON path (`messages[1].content`)."""

    field: str
    position: int  # the character offset of the first bad character in that string
    char: str  # "U+0000" or "U+D800".."U+DFFF"
    in_key: bool = False  # the bad character is in an object key (the key's path is `field`)

    def describe(self) -> str:
        what = "a NUL character" if self.char == "U+0000" else "an unpaired UTF-16 surrogate"
        where = "the key " if self.in_key else ""
        return f"{where}{self.field} contains {what} ({self.char}) at character {self.position}"


def _bad_at(s: str) -> int | None:
    cleaned = clean(s)
    if cleaned == s:
        return None
    return next(i for i, (a, b) in enumerate(zip(s, cleaned, strict=True)) if a != b)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def first_bad(value: Any, root: str = "") -> BadText | None:
    """The first string (in document order, keys included) of a parsed JSON value that holds a NUL or
    a lone surrogate, as a BadText naming its JSON path from `root` (`messages[1].content`; "body"
    when the value itself is that string); None when all text is clean.

    Iterative, so any nesting json.loads accepted is fine.
    """
    stack: list[tuple[str, Any, bool]] = [(root, value, False)]
    while stack:
        path, v, is_key = stack.pop()
        if isinstance(v, str):
            if (pos := _bad_at(v)) is not None:
                return BadText(path or "body", pos, f"U+{ord(v[pos]):04X}", in_key=is_key)
        elif isinstance(v, dict):
            children: list[tuple[str, Any, bool]] = []
            for k, child in v.items():
                key = str(k)
                children.append((_join(path, clean(key)), key, True))
                children.append((_join(path, key), child, False))
            stack.extend(reversed(children))
        elif isinstance(v, list | tuple):
            stack.extend(reversed([(_join(path, i), child, False) for i, child in enumerate(v)]))
    return None
