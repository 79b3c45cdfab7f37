"""Data package: the langgraph.v1 schema, the generated plane manifests and the fixed pipelines (JSON)."""
