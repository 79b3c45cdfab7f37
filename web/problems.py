"""RFC 9457 problem details: every error answer says what went wrong and what to do next."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from spinbot.errorcodes import BY_STATUS, CODES
from spinbot.errors import Problem, SpinbotError, outage, unavailable
from spinbot.text import clean_value

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    416: "Range not satisfiable",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class SafeJSONResponse(JSONResponse):
    """A JSON response that never fails on text: a lone surrogate (model or task output that slipped
    through) is replaced by U+FFFD instead of turning the answer into a 500."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return super().render(clean_value(content))


def openai_error(status: int, message: str, code: str, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error object ({message, type, code, param}), which its SDKs read for the message they show.

    type: invalid_request_error for 4xx (rate_limit_error for 429), server_error for 5xx.
    """
    kind = "server_error" if status >= 500 else "rate_limit_error" if status == 429 else "invalid_request_error"
    return {"message": message, "type": kind, "code": code, "param": param}


def _param(extra: dict[str, Any]) -> str | None:
    if isinstance(extra.get("field"), str):
        return str(extra["field"])
    errors = extra.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        loc = [str(x) for x in errors[0].get("loc", ()) if x != "body"]
        return ".".join(loc) or None
    return None


def problem_body(status: int, detail: str, *, code: str, instance: str, hint: str | None = None,
                 **extra: Any) -> dict[str, Any]:
    """The problem+json body; on /v1 paths also OpenAI's `error` object beside the problem fields."""
    body: dict[str, Any] = {
        "type": f"urn:spinbot:problem:{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
    }
    if hint:
        body["hint"] = hint
    body.update(extra)
    if instance == "/v1" or instance.startswith("/v1/"):
        message = f"{detail} ({hint})" if hint else detail
        body["error"] = openai_error(status, message, code, _param(extra))
    return body


def headers_of(code: str) -> dict[str, str]:
    """The HTTP headers an answer with `code` carries: Retry-After from the catalogue, the Bearer challenge on 401."""
    entry = CODES[code]
    headers = {"Retry-After": str(entry.retry_after_s)} if entry.retry_after_s else {}
    if entry.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="spinbot"'
    return headers


def problem_response(request: Request, exc: SpinbotError, *, status: int | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    """`exc` as problem+json: status and headers from the catalogue (spinbot.errorcodes) unless given."""
    status = status or exc.status
    extra, own = (exc.extra, exc.headers) if isinstance(exc, Problem) else ({}, {})
    body = problem_body(status, exc.message, code=exc.code, instance=request.url.path,
                        hint=exc.advice, **extra)
    return SafeJSONResponse(body, status_code=status, headers=headers or headers_of(exc.code) | own,
                            media_type=PROBLEM_TYPE)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        out.append({"loc": [str(x) for x in err.get("loc", ())], "msg": str(err.get("msg", "")),
                    "type": str(err.get("type", ""))})
    return out


def install(app: FastAPI) -> None:
    """Route every error through problem details."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        hint = {404: "see /docs for the routes this server has"}.get(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "error")
        code = BY_STATUS.get(exc.status_code, "error")
        return problem_response(request, Problem(code, detail, hint=hint), status=exc.status_code,
                                headers=dict(exc.headers or {}) or headers_of(code))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        p = Problem("invalid_request", "the request does not match the API's schema",
                    errors=_validation_errors(exc))
        return problem_response(request, p)

    @app.exception_handler(SpinbotError)
    async def _spinbot(request: Request, exc: SpinbotError) -> JSONResponse:
        return problem_response(request, exc)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        if (part := outage(exc)) is not None:
            log.warning("%s unavailable on %s %s: %s: %s", part, request.method, request.url.path,
                        type(exc).__name__, exc)
            return problem_response(request, unavailable(part, exc))
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        p = Problem("internal", f"the server failed: {type(exc).__name__}")
        return problem_response(request, p)
