"""Spinbot: goal -> evaluated langgraph.v1 task graph -> dual-plane execution."""

from pathlib import Path

__version__ = "0.1.0"

#: Repository root: manifests/, prompts/ and web assets are read from here.
ROOT = Path(__file__).resolve().parent.parent
MANIFESTS_DIR = ROOT / "manifests"
PROMPTS_DIR = ROOT / "prompts"
