"""Data package: the versioned jinja2 prompt templates (spinbot.prompts renders them)."""
