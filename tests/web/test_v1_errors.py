"""/v1 errors carry OpenAI's `error` object beside the problem fields, so the SDKs show the message."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from openai import (
    APIStatusError,
    AsyncOpenAI,
    AuthenticationError,
    NotFoundError,
    UnprocessableEntityError,
)

from spinbot.settings import Settings
from tests.web.conftest import LiveAPI, serve

KEY = "test-key-1"
USER = [{"role": "user", "content": "make an echo"}]


@pytest.fixture
async def keyed(api_settings: Settings) -> AsyncIterator[LiveAPI]:
    # 0.01 MB: what is used may be 10 KB, the raw /v1 body 40 KB (history images are dropped unread).
    async with serve(api_settings.model_copy(update={"api_keys": [KEY], "max_body_mb": 0.01})) as live:
        yield live


def client(api: LiveAPI, key: str = KEY) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{api.url}/v1", api_key=key, max_retries=0)


def assert_carries(e: APIStatusError, status: int, code: str, words: str) -> dict[str, object]:
    assert e.status_code == status
    body = e.body
    assert isinstance(body, dict), body  # the SDK hands over the `error` object
    assert body["code"] == code and words in str(body["message"]), body
    assert body["type"] == ("invalid_request_error" if status < 500 else "server_error")
    assert words in e.message and e.message != f"Error code: {status}"
    return body


async def test_401_names_the_key(keyed: LiveAPI) -> None:
    async with client(keyed, "wrong") as oa:
        with pytest.raises(AuthenticationError) as err:
            await oa.chat.completions.create(model="spinbot", messages=USER)  # type: ignore[arg-type]
        assert_carries(err.value, 401, "unauthorized", "API key")
        with pytest.raises(AuthenticationError) as err:
            await oa.models.list()
        assert_carries(err.value, 401, "unauthorized", "SPINBOT_API_KEYS")


@pytest.mark.parametrize("stream", [False, True])
async def test_404_names_the_model(keyed: LiveAPI, stream: bool) -> None:
    async with client(keyed) as oa:
        with pytest.raises(NotFoundError) as err:
            await oa.chat.completions.create(model="gpt-4", messages=USER, stream=stream)  # type: ignore[arg-type]
    body = assert_carries(err.value, 404, "model_not_found", "gpt-4")
    assert "spinbot-plan" in str(body["message"])  # what to use instead


async def test_404_for_an_unknown_route(keyed: LiveAPI) -> None:
    async with client(keyed) as oa:
        with pytest.raises(NotFoundError) as err:
            await oa.models.retrieve("nope")
    assert_carries(err.value, 404, "not_found", "/v1/models/nope")


async def test_413_says_the_limit(keyed: LiveAPI) -> None:
    async with client(keyed) as oa:
        with pytest.raises(APIStatusError) as err:  # the raw body, refused by Content-Length
            await oa.chat.completions.create(model="spinbot", messages=[
                {"role": "user", "content": "x" * 60_000}])
        assert_carries(err.value, 413, "too_large", "the limit is 41 KB")  # 4 x 0.01 MB
        with pytest.raises(APIStatusError) as err:  # within the raw limit, but what is used is over
            await oa.chat.completions.create(model="spinbot", messages=[
                {"role": "user", "content": "x" * 20_000}])
        assert_carries(err.value, 413, "too_large", "the last user message")


async def test_422_names_the_param(keyed: LiveAPI) -> None:
    async with client(keyed) as oa:
        with pytest.raises(UnprocessableEntityError) as err:
            await oa.chat.completions.create(model="spinbot", messages=[
                {"role": "user", "content": "a"}, {"role": "user", "content": "make\x00 it"}])
        body = assert_carries(err.value, 422, "invalid_text", "NUL")
        assert body["param"] == "messages[1].content"
        with pytest.raises(UnprocessableEntityError) as err:
            await oa.chat.completions.create(model="spinbot", messages=[])
        body = assert_carries(err.value, 422, "invalid_request", "schema")
        assert body["param"] == "messages"


async def test_problem_fields_stay_beside_the_error(keyed: LiveAPI) -> None:
    async with httpx.AsyncClient(base_url=keyed.url) as c:
        r = await c.post("/v1/chat/completions", json={"model": "spinbot", "messages": USER})
        native = await c.get("/api/jobs")
    body = r.json()
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert body["code"] == "unauthorized" and body["hint"] and body["error"]["code"] == "unauthorized"
    assert "error" not in native.json()  # native routes: problem details only
