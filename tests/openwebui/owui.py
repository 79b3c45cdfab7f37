"""A real Open WebUI for the tests: installed once into its own cached venv, started offline against Spinbot.

The venv lives outside the repository (OPENWEBUI_TEST_VENV, default ~/.cache/spinbot-openwebui-venv)
and is reused while its stamp names the pinned version. torch goes in first, pinned to the local CPU
build, so open-webui's looser requirement pulls no CUDA wheels.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

VERSION = "0.12.4"
TORCH = "torch==2.13.0"


def venv_dir() -> Path:
    default = Path.home() / ".cache" / "spinbot-openwebui-venv"
    return Path(os.environ.get("OPENWEBUI_TEST_VENV") or default)


def _stamp(venv: Path) -> Path:
    return venv / f".spinbot-installed-{VERSION}"


def installed(venv: Path | None = None) -> bool:
    venv = venv or venv_dir()
    return _stamp(venv).exists() and (venv / "bin" / "open-webui").exists()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One install at a time across processes (concurrent test sessions share the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def install(venv: Path | None = None, *, log: Path | None = None) -> dict[str, float]:
    """Make sure open-webui==VERSION is installed in venv; returns {"install_s": seconds, "cached": 0|1}.

    Raises RuntimeError with pip's last lines when it cannot be installed here.
    """
    venv = venv or venv_dir()
    started = time.monotonic()
    with _locked(venv.parent / f".{venv.name}.lock"):
        if installed(venv):
            return {"install_s": time.monotonic() - started, "cached": 1}
        py = venv / "bin" / "python"
        if not py.exists():
            _run([sys.executable, "-m", "venv", str(venv)], log)
        pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        _run([*pip, TORCH], log)
        _run([*pip, f"open-webui=={VERSION}"], log)
        seconds = time.monotonic() - started
        _stamp(venv).write_text(json.dumps({"version": VERSION, "install_s": round(seconds, 1)}))
    return {"install_s": seconds, "cached": 0}


def _run(cmd: list[str], log: Path | None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if log is not None:
        with log.open("a") as f:
            f.write(f"$ {shlex.join(cmd)}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"`{shlex.join(cmd)}` failed ({proc.returncode}):\n{tail}")


def offline_env(*, upstream: str, key: str, data_dir: Path, origin: str) -> dict[str, str]:
    """The environment that starts Open WebUI offline and clean (verified here): nothing but Spinbot, no model
    downloads, no update checks, no login; a fresh data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPINBOT_", "OPENAI_", "OLLAMA_"))}
    env.update({
        "ENABLE_OLLAMA_API": "false",
        "OPENAI_API_BASE_URL": upstream,
        "OPENAI_API_KEY": key,
        "ENABLE_FORWARD_USER_INFO_HEADERS": "true",
        "ENABLE_PERSISTENT_CONFIG": "false",
        "WEBUI_AUTH": "false",
        "OFFLINE_MODE": "true",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "RAG_EMBEDDING_MODEL_AUTO_UPDATE": "false",
        "RAG_RERANKING_MODEL_AUTO_UPDATE": "false",
        "WHISPER_MODEL_AUTO_UPDATE": "false",
        "ENABLE_RAG_LOCAL_WEB_FETCH": "false",
        "ENABLE_VERSION_UPDATE_CHECK": "false",
        "WEBUI_SECRET_KEY": "spinbot-test-secret-key-0123456789abcdef",
        "RAG_EMBEDDING_MODEL": "",
        "CORS_ALLOW_ORIGIN": origin,
        "DATA_DIR": str(data_dir),
        "HOME": str(data_dir),
        "PYTHONUNBUFFERED": "1",
    })
    return env


if __name__ == "__main__":  # python -m tests.openwebui.owui: install (or confirm) the cached venv
    print(install(log=Path("/tmp/owui-install.log")))
