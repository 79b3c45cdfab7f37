"""A handler's output reaches Redis, the events and Postgres as plain JSON, whatever NumPy types it holds."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson

from executors.interface import NodeStep
from executors.middleware import call_handler


async def test_numpy_values_in_an_output_become_plain_json() -> None:
    """A face detector's np.float64 coordinates crashed the hand-off (orjson: 'Type is not JSON serializable')."""

    async def handler(ctx: Any, params: Any) -> dict[str, Any]:
        return {"mouth": {"x": np.float64(0.25), "n": np.int64(3)}, "env": np.array([0.5, 1.0]), "ok": np.bool_(True)}

    step = NodeStep(run=None, node=None, service=SimpleNamespace(handler=handler), params=object(), ctx=object())  # type: ignore[arg-type]
    out = await call_handler(step)
    assert out == {"mouth": {"x": 0.25, "n": 3}, "env": [0.5, 1.0], "ok": True}
    assert type(out["mouth"]["x"]) is float and type(out["mouth"]["n"]) is int
    assert orjson.loads(orjson.dumps(out)) == out
