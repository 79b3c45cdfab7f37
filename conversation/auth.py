"""Who is asking: a Bearer API key maps to a stable owner id; with no keys configured everyone is `local`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from pathlib import Path

from spinbot.settings import Settings

LOCAL_OWNER = "local"


def owner_of(key: str) -> str:
    """A stable, non-reversible owner id for an API key (what jobs, conversations and uploads record)."""
    return "k_" + hashlib.sha256(key.encode()).hexdigest()[:24]


def match_key(settings: Settings, presented: str | None) -> str | None:
    """The owner for a presented key, None when keys are configured and it is not one of them."""
    if not settings.api_keys:
        return LOCAL_OWNER
    if not presented:
        return None
    for key in settings.api_keys:
        if hmac.compare_digest(key.encode(), presented.encode()):
            return owner_of(key)
    return None


class LinkSigner:
    """Signed, expiring artifact and job-page links: a browser (or Open WebUI) can load them without a key.

    A job link grants read-only access to one job (its page, GET /api/jobs/{id}, its events); its
    signed name (`job:<id>`) can never be an artifact key, so neither kind of link opens the other.
    """

    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    @classmethod
    def from_settings(cls, settings: Settings) -> LinkSigner:
        if settings.link_secret:
            return cls(settings.link_secret.get_secret_value().encode(), settings.link_ttl_s)
        return cls(_secret_file(settings.data_dir / "link_secret"), settings.link_ttl_s)

    def _sig(self, key: str, exp: int) -> str:
        mac = hmac.new(self._secret, f"{key}\n{exp}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:18]).decode().rstrip("=")

    def query(self, key: str, *, now: float | None = None) -> str:
        exp = int((now or time.time()) + self.ttl_s)
        return f"exp={exp}&sig={self._sig(key, exp)}"

    def verify(self, key: str, exp: str | None, sig: str | None) -> bool:
        # ASCII digits, bounded: int() takes "²" or "١" and fails past 4,300 digits
        if not exp or not sig or not exp.isascii() or not exp.isdigit() or len(exp) > 12 or int(exp) < time.time():
            return False
        return hmac.compare_digest(self._sig(key, int(exp)), sig)

    def job_query(self, job_id: str, *, now: float | None = None) -> str:
        """`exp=...&sig=...` for read-only access to one job."""
        return self.query(_job_name(job_id), now=now)

    def verify_job(self, job_id: str, exp: str | None, sig: str | None) -> bool:
        return self.verify(_job_name(job_id), exp, sig)


def _job_name(job_id: str) -> str:
    return f"job:{job_id}"  # artifact keys are paths of stored objects: never this


def _secret_file(path: Path) -> bytes:
    """A per-installation secret kept in the data directory, so links survive restarts."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(secret)
    tmp.chmod(0o600)
    try:
        tmp.rename(path) if not path.exists() else tmp.unlink()
    except OSError:
        pass
    return path.read_bytes()
