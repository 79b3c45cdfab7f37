"""Secrets never reach a log line: API keys in a query (`?api_key=`, documented for media links), link
signatures (`sig=`, a key to an artifact until it expires), Authorization headers and Bearer tokens, and
every secret the settings hold, wherever they appear (uvicorn's access log, tracebacks, our own lines).

Entrypoints install it on the root logger's handlers (shell/cli.py), so every logger that propagates
there, uvicorn's included, is covered.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from spinbot.settings import Settings

MASK = "***"
#: What marks a secret in text, whatever the settings hold: query parameters, headers, bearer tokens.
PATTERNS = (
    re.compile(r"(?i)([?&;](?:api_key|apikey|access_token|token|sig|key)=)[^&\s\"'#]+"),
    re.compile(r"(?i)((?:authorization|x-api-key)[\"']?\s*[:=]\s*[\"']?(?:bearer\s+|basic\s+)?)[^\s\"',;}]+"),
    re.compile(r"(?i)(\bbearer\s+)[\w.~+/=-]+"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every secret replaced by MASK: the given values (longest first), then the PATTERNS."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    for pattern in PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def settings_secrets(settings: Settings) -> list[str]:
    """The secret values in the settings (API keys, link secret, S3 keys), longest first; short ones
    (under 6 characters) are left to the patterns rather than masking every such word in the logs."""
    values = [*settings.api_keys]
    for secret in (settings.link_secret, settings.s3_access_key, settings.s3_secret_key, settings.api_key):
        if secret is not None:
            values.append(secret.get_secret_value())
    return sorted({v for v in values if len(v) >= 6}, key=len, reverse=True)


class RedactSecrets(logging.Filter):
    """A handler filter that rewrites each record's message (and its traceback text) without secrets."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = list(secrets)
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


def install(settings: Settings, logger: logging.Logger | None = None) -> None:
    """Put one RedactSecrets on each handler of `logger` (the root logger by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        handler.filters = [f for f in handler.filters if not isinstance(f, RedactSecrets)]
        handler.addFilter(RedactSecrets(settings_secrets(settings)))
