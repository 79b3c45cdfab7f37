"""Prompt templates: versioned jinja2 files in prompts/, shared by the planner and the LLM services."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("prompts", "."),  # the templates ship in the `prompts` package
        undefined=jinja2.StrictUndefined,  # a missing variable is a bug, not an empty string
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # `tojson` keeps keys in their order: the order a JSON schema's grammar makes the model write them.
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "ensure_ascii": False}
    return env


def render(template: str, **values: Any) -> str:
    """Render prompts/<template> (e.g. 'intent.v1.system.j2')."""
    return _env().get_template(template).render(**values).strip()
