"""Result checks: what a service measures on what it made, recorded on the node as `output.checks`.

A service declares its checks next to its handler (`@service(..., checks=..., measures=(...))`); the
executor runs them after the handler (executors/checking.py) and stores each as a JSON object:

    {"name": "duration_s", "value": 2.7, "unit": "s", "ok": null, "detail": "2.7 s of speech"}

`ok` is True or False when the output can be judged on its own (an image is not blank, the words
recognised match the text given), None for a measurement that only the request's expectations judge
(a duration: spinbot/expectations.py). A check that could not be made carries `not_checked` (why) and
never fails the node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from spinbot.errors import SpinbotError

Value = float | int | str | bool | None


@dataclass(frozen=True, slots=True)
class Check:
    """One measurement: name, value (unit), verdict on its own (ok: True/False/None), words, or why not made."""

    name: str
    value: Value = None
    unit: str = ""
    ok: bool | None = None
    detail: str = ""
    not_checked: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "value": self.value}
        if self.unit:
            out["unit"] = self.unit
        out["ok"] = self.ok
        if self.detail:
            out["detail"] = self.detail
        if self.not_checked is not None:
            out["not_checked"] = self.not_checked
        return out

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Check:
        ok = doc.get("ok")
        return cls(name=str(doc.get("name", "")), value=doc.get("value"), unit=str(doc.get("unit", "")),
                   ok=ok if isinstance(ok, bool) else None, detail=str(doc.get("detail", "")),
                   not_checked=None if doc.get("not_checked") is None else str(doc["not_checked"]))


def not_checked(name: str, why: str) -> Check:
    return Check(name, ok=None, not_checked=why)


def why_failed(exc: BaseException) -> str:
    """An exception as the reason a check was not made."""
    if isinstance(exc, SpinbotError):
        return exc.message
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def measured(name: str, measure: Callable[[], Check | Iterable[Check]]) -> list[Check]:
    """`measure()`'s check(s), or one `not_checked(name, why)` when it raises: a broken measurement (a
    corrupt file, a recogniser error) is recorded, never raised."""
    try:
        got = measure()
    except Exception as e:
        return [not_checked(name, why_failed(e))]
    return [got] if isinstance(got, Check) else list(got)


def checks_of(output: dict[str, Any] | None) -> list[Check]:
    """The checks recorded on a node's output (none when it has none)."""
    raw = (output or {}).get("checks")
    return [Check.from_json(c) for c in raw if isinstance(c, dict)] if isinstance(raw, list) else []


def find(checks: Iterable[Check], name: str) -> Check | None:
    return next((c for c in checks if c.name == name and c.not_checked is None), None)
