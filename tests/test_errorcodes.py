"""The error catalogue is the one place a problem code lives: every code the code raises is in it, the
HTTP answers take their status and headers from it, and docs/api.md lists it as it is."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

import planner.builder
import planner.pipelines
import shell.evaluate
import shell.submit
import spinbot.artifacts
import spinbot.llm
import spinbot.redis_setup
import spinbot.runtime
from spinbot import ROOT
from spinbot.errorcodes import CODES
from spinbot.errors import Problem, SpinbotError, TooManyJobs
from web import problems

PACKAGES = ("spinbot", "web", "planner", "evaluator", "executors", "conversation", "shell")
# modules that declare SpinbotError subclasses, imported above so that __subclasses__ sees them
DECLARING = (shell.evaluate, planner.builder, planner.pipelines, spinbot.artifacts, spinbot.llm, spinbot.redis_setup,
             spinbot.runtime, shell.submit)


def codes_in_source() -> Iterator[tuple[str, str]]:
    """(file, code) for each literal code: `code = "..."` in a class, Problem("..."), openai_error(_, _, "...")."""
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            where = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    for stmt in node.body:
                        if (isinstance(stmt, ast.Assign) and [getattr(t, "id", None) for t in stmt.targets] == ["code"]
                                and isinstance(stmt.value, ast.Constant)):
                            yield where, str(stmt.value.value)
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    args = {"Problem": node.args[:1], "openai_error": node.args[2:3]}.get(node.func.id, [])
                    yield from ((where, str(a.value)) for a in args if isinstance(a, ast.Constant))


def test_every_code_in_the_source_is_catalogued() -> None:
    found = list(codes_in_source())
    assert len(found) > 40  # the walk sees the code base
    assert [(where, code) for where, code in found if code not in CODES] == []


def subclasses(cls: type[SpinbotError]) -> Iterator[type[SpinbotError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


def test_error_classes_agree_with_the_catalogue() -> None:
    classes = list(subclasses(SpinbotError))
    assert len(classes) >= 18
    for cls in classes:
        entry = CODES[cls.code]
        if cls.transient:  # an executor retries these; a client may too
            assert entry.retryable and entry.status == 503, cls


def test_a_code_outside_the_catalogue_is_refused_where_it_is_raised() -> None:
    with pytest.raises(KeyError, match="not_a_code"):
        Problem("not_a_code", "never answered")


async def test_answers_take_status_headers_and_hint_from_the_catalogue() -> None:
    app = FastAPI()
    problems.install(app)

    @app.get("/api/jobs")
    async def jobs() -> None:
        raise TooManyJobs(4, 4)

    @app.get("/v1/models")
    async def models() -> None:
        raise Problem("unauthorized", "a valid API key is required")

    @app.get("/api/llm")
    async def llm() -> None:
        raise spinbot.llm.LLMTimeout("the model took too long")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        jobs_answer, v1_answer, llm_answer = [await client.get(p) for p in ("/api/jobs", "/v1/models", "/api/llm")]
    assert (jobs_answer.status_code, jobs_answer.headers["retry-after"]) == (429, "10")
    assert jobs_answer.json()["code"] == "too_many_jobs"
    assert v1_answer.status_code == 401 and v1_answer.headers["www-authenticate"].startswith("Bearer")
    assert v1_answer.json()["error"]["code"] == "unauthorized"
    assert v1_answer.json()["hint"] == CODES["unauthorized"].hint
    assert (llm_answer.status_code, llm_answer.headers["retry-after"]) == (503, "5")
    assert llm_answer.json()["hint"] == CODES["llm_timeout"].hint


def documented(path: Path) -> dict[str, tuple[int, str, str]]:
    section = path.read_text().split("### Error codes", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `([a-z_0-9]+)` \| (\d+) \| ([^|]+) \| (.+) \|$", section, re.M)
    return {code: (int(status), retry.strip(), hint.strip()) for code, status, retry, hint in rows}


def test_docs_api_lists_the_catalogue() -> None:
    want = {code: (e.status, (f"after {e.retry_after_s} s" if e.retry_after_s else "yes") if e.retryable else "no",
                   e.hint) for code, e in CODES.items()}
    assert documented(ROOT / "docs" / "api.md") == want
