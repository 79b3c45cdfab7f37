"""Object ownership: a graph may name only objects (uploads, artifacts) made with the caller's API key."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from conversation.services import Services
from spinbot.errors import Problem
from spinbot.graph import Graph

#: A literal string a task would read as an object key (uploads/{owner}/{id}/{name}, jobs/{job}/{node}/{name}).
OBJECT_KEY = re.compile(r"^(uploads|jobs)/[^/\s]+/[^/\s]+/\S+$")


def object_keys(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Every (field path, object key) a graph document names: context and node params and outputs.

    An object appears as a descriptor or attachment (`{"key": ...}`) or as a bare key string; references
    (`$node`, `$attachment`) name no object themselves and are resolved from these.
    """

    def walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
        if isinstance(value, dict):
            if isinstance(value.get("key"), str):
                yield f"{path}.key", value["key"]
            for k, v in value.items():
                if k != "key":
                    yield from walk(v, f"{path}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                yield from walk(v, f"{path}[{i}]")
        elif isinstance(value, str) and OBJECT_KEY.match(value):
            yield path, value

    yield from walk(doc.get("context") or {}, "context")
    for i, node in enumerate(doc.get("nodes") or []):
        if isinstance(node, dict):
            yield from walk(node.get("params") or {}, f"nodes[{i}].params")
            yield from walk(node.get("output") or {}, f"nodes[{i}].output")


async def check_objects(services: Services, graph: Graph | dict[str, Any], owner: str) -> None:
    """Raise 404 (the same as for an absent object, naming the field) unless `owner` owns every object."""
    doc = graph.to_json() if isinstance(graph, Graph) else graph
    seen: set[str] = set()
    for path, key in object_keys(doc):
        if key in seen:
            continue
        meta = await services.repo.artifact(key)
        if meta is None or meta.owner != owner:
            raise Problem("not_found", f"{path} names object {key}, which does not exist", field=path,
                          hint="use the key of an upload or artifact made with the same API key "
                               "(POST /api/uploads returns one)")
        seen.add(key)
