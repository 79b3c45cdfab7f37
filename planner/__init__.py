"""The agentic planner: goal + conversation + live manifest -> evaluated langgraph.v1 graph."""

from planner.agent import plan
from planner.models import Message, PlanRequest, PlanResult

__all__ = ["Message", "PlanRequest", "PlanResult", "plan"]
