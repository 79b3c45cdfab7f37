"""Secrets are redacted in every log line, uvicorn's access log included (issue 22, item 22)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from spinbot import ROOT
from spinbot.embedded import free_port
from spinbot.redact import RedactSecrets, redact
from spinbot.settings import Settings
from tests.runtime.conftest import executor_env

KEY = "sk-spinbot-3f9a0c1e77d2"


async def test_the_running_api_logs_no_secret(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    env = executor_env(settings, SPINBOT_API_KEYS=f"{KEY},another-key-5521", SPINBOT_LINK_SECRET="link-secret-9b1d")
    log_path = tmp_path / "api.log"
    with log_path.open("wb") as log:
        api = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "shell.cli", "api", "--host", "127.0.0.1", "--port", str(port), "-v",  # access log
            cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                while True:
                    assert api.returncode is None, log_path.read_text()
                    try:
                        if (await http.get("/health")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, "the API did not come up"
                    await asyncio.sleep(0.3)
                # the documented link form, a signed link, a key in a path, a wrong key in the header
                face = "/api/artifacts/uploads/x/a1/face.png"
                await http.get(face, params={"api_key": KEY})
                await http.get(face, params={"exp": "1999999999", "sig": "c2lnbmF0dXJl"})
                await http.get(f"/api/jobs/{KEY}", headers={"Authorization": f"Bearer {KEY}"})
                await http.get("/v1/models", params={"api_key": "not-a-key-but-secret-shaped"})
        finally:
            api.terminate()
            await asyncio.wait_for(api.wait(), 20)
    text = log_path.read_text()
    assert "GET /api/artifacts/uploads/x/a1/face.png?api_key=***" in text, text  # the access log is there
    assert "sig=***" in text and f"/api/jobs/{'***'}" in text, text
    for secret in (KEY, "c2lnbmF0dXJl", "not-a-key-but-secret-shaped"):
        assert secret not in text, (secret, text)


def test_every_line_and_traceback_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.redaction")
    caplog.handler.addFilter(RedactSecrets(["link-secret-9b1d"]))
    try:
        with caplog.at_level(logging.INFO, logger="tests.redaction"):
            logger.info("calling %s with %s", "http://h/x?token=abc123&y=1", {"Authorization": "Bearer tok-777"})
            logger.warning("secret %s in a message", "link-secret-9b1d")
            try:
                raise RuntimeError("failed GET http://h/api?api_key=zzz-999 (authorization: Basic dXNlcjpwdw==)")
            except RuntimeError:
                logger.exception("request failed")
    finally:
        caplog.handler.filters.clear()
    text = caplog.text
    for secret in ("abc123", "tok-777", "link-secret-9b1d", "zzz-999", "dXNlcjpwdw=="):
        assert secret not in text, (secret, text)
    assert "token=***&y=1" in text and "RuntimeError" in text


def test_settings_secrets_are_masked_verbatim() -> None:
    s = Settings(api_keys=["key-one-123456"], s3_secret_key=SecretStr("minio-secret-abc"))
    from spinbot.redact import settings_secrets

    secrets = settings_secrets(s)
    line = redact("user key-one-123456 connected to s3 with minio-secret-abc", secrets)
    assert line == "user *** connected to s3 with ***"
