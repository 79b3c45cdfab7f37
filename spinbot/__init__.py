"""Spinbot: goal -> evaluated langgraph.v1 task graph -> dual-plane execution."""

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

__version__ = "0.1.0"

#: Where the packages sit: the checkout for an editable install (`spinbot manifest` writes under it).
ROOT = Path(__file__).resolve().parent.parent
#: The manifests and the langgraph.v1 schema, shipped in the distribution (the top-level `manifests` package).
MANIFESTS_DIR: Traversable = files("manifests")
