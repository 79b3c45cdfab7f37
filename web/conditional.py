"""Conditional requests on stored files (RFC 9110 section 13): If-None-Match answers 304, If-Range with a
validator that no longer matches gets the whole file.

Artifacts are immutable objects named by their SHA-256, so the strong ETag is `"<sha256>"`. Werkzeug's
`parse_if_range_header` drops the weak marker (`W/`), which If-Range must never match, hence these few
lines of our own.
"""

from __future__ import annotations


def _tags(header: str) -> list[str]:
    return [t.strip() for t in header.split(",") if t.strip()]


def none_match(header: str | None, etag: str) -> bool:
    """True when If-None-Match names `etag` (weak comparison: `W/"x"` matches `"x"`) or is `*`:
    the client's copy is current, answer 304."""
    if not header or not etag:
        return False
    return any(t == "*" or t.removeprefix("W/") == etag for t in _tags(header))


def range_applies(if_range: str | None, etag: str) -> bool:
    """Whether a Range request is served as a range (206): yes without If-Range; with it, only when its
    ETag matches strongly (a weak one never does). A date cannot be checked against artifacts, which
    send no Last-Modified, so it counts as stale and the whole file is sent (RFC 9110 13.1.5)."""
    if if_range is None:
        return True
    return bool(etag) and if_range.strip() == etag
