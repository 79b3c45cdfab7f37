"""The evaluator: a pure check of a langgraph.v1 graph against what can run now."""

from evaluator.core import evaluate, find_urls
from evaluator.model import Estimate, Finding, Limits, Verdict

__all__ = ["Estimate", "Finding", "Limits", "Verdict", "evaluate", "find_urls"]
