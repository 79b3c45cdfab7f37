"""Control plane: LLM, publishing and manifest services."""
