"""The agentic planner: goal + conversation + live manifest -> evaluated langgraph.v1 graph."""
