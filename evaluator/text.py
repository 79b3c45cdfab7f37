"""What params hold, in the evaluator's terms: references, strings, URLs, and a param's rule in words."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import orjson

from spinbot.graph import AttachmentRef, NodeRef, Ref

#: Anything with a scheme and `://` is a URL to us: http, https, file, gopher, ftp...
URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,15}://[^\s'\"<>]*")


def compatible(produced: str, wanted: str) -> bool:
    return produced == wanted or "any" in (produced, wanted)


def refs_of(params: dict[str, Any]) -> list[tuple[str, Ref]]:
    """(param, reference) pairs of a validated node's params (spinbot.graph.iter_refs, without re-validating)."""
    out: list[tuple[str, Ref]] = []
    for name, value in params.items():
        kind = type(value)
        if kind is dict:
            if "$node" in value:
                out.append((name, NodeRef(value["$node"], value["output"])))
            elif "$attachment" in value:
                out.append((name, AttachmentRef(value["$attachment"])))
        elif kind is list:
            for item in value:
                if type(item) is dict:
                    if "$node" in item:
                        out.append((name, NodeRef(item["$node"], item["output"])))
                    elif "$attachment" in item:
                        out.append((name, AttachmentRef(item["$attachment"])))
    return out


def strings_of(value: Any) -> list[str]:
    """Every string inside a param value (dict keys included), references skipped; iterative, one pass."""
    out: list[str] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict) and "$node" not in v and "$attachment" not in v:
            out.extend(str(k) for k in v)
            stack.extend(v.values())
    return out


def may_hold_url_or_nul(params: dict[str, Any] | list[dict[str, Any]]) -> bool:
    """False when no string in params (or a list of them) can hold a URL or a NUL: one serialisation, no walk."""
    try:
        raw = orjson.dumps(params)
    except TypeError:  # not JSON (a Graph built in code): walk it
        return True
    return b"://" in raw or b"\\u0000" in raw


def urls_in(strings: list[str]) -> list[str]:
    return [m.group(0) for s in strings if "://" in s for m in URL_RE.finditer(s)]


def find_urls(params: dict[str, Any]) -> list[str]:
    """URL-like substrings anywhere in params (references skipped)."""
    return urls_in(strings_of(params))


def host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


_KINDS = {"string": "text", "integer": "a whole number", "number": "a number", "boolean": "true or false",
          "array": "a list", "object": "an object", "null": "null"}


def _bounds(prop: dict[str, Any]) -> str:
    rule = ""
    for o in [prop, *prop.get("anyOf", [])]:
        lo, hi = o.get("minimum"), o.get("maximum")
        if lo is not None and hi is not None:
            rule += f" from {lo:g} to {hi:g}"
        elif lo is not None:
            rule += f" of at least {lo:g}"
        elif hi is not None:
            rule += f" of at most {hi:g}"
        if o.get("maxLength") is not None:
            rule += f" of at most {o['maxLength']} characters"
    return rule


def allowed_text(name: str, prop: dict[str, Any]) -> str:
    """What a param accepts, in words ("voice must be one of female, male (default female)"), never a raw schema."""
    if "enum" in prop:
        rule = "one of " + ", ".join(str(v) for v in prop["enum"])
    else:
        types = prop.get("type") or [o["type"] for o in prop.get("anyOf", []) if o.get("type") not in (None, "null")]
        types = [types] if isinstance(types, str) else list(types)
        rule = " or ".join(_KINDS.get(str(t), str(t)) for t in types) + _bounds(prop)
    if not rule:
        return f"{name} must match the service's params schema"
    default = f" (default {prop['default']})" if prop.get("default") not in (None, "") else ""
    return f"{name} must be {rule.strip()}{default}"


def article(word: str) -> str:
    """The word with its article: "an image", "a video"."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"
