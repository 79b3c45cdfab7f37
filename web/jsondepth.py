"""One depth limit for every JSON body, checked on the raw bytes before anything parses them: JSON nested
hundreds deep makes parsers, validators and the evaluator recurse until they fail with 500s."""

from __future__ import annotations

import asyncio
import re

import numpy as np

from spinbot.errors import Problem

#: The deepest JSON a request may hold (a graph with nested params needs about 10).
MAX_JSON_DEPTH = 64
#: Bodies larger than this are measured in a thread (a few hundred ms for tens of MB on a busy machine).
THREAD_BYTES = 1 << 20
_ESCAPE = re.compile(rb"\\.", re.S)  # an escape pair: what remains of `"` afterwards opens or closes a string
_NOT_SYNTAX = bytes(b for b in range(256) if b not in b'"[]{}')
_STEP = np.zeros(256, np.int8)
_STEP[list(b"[{")] = 1
_STEP[list(b"]}")] = -1


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings do not count). A text
    with at most MAX_JSON_DEPTH brackets gets their count (an upper bound) without a closer look."""
    opens = body.count(b"[") + body.count(b"{")
    if opens <= MAX_JSON_DEPTH:
        return opens
    syntax = np.frombuffer(_ESCAPE.sub(b"", body).translate(None, _NOT_SYNTAX), np.uint8)
    outside = (np.cumsum(syntax == ord('"')) & 1) == 0
    return int(np.cumsum(np.where(outside, _STEP[syntax], 0), dtype=np.int64).max(initial=0))


async def too_deep(body: bytes) -> Problem | None:
    """422 json_too_deep when `body` nests deeper than MAX_JSON_DEPTH; None when it does not."""
    depth = await asyncio.to_thread(json_depth, body) if len(body) > THREAD_BYTES else json_depth(body)
    if depth <= MAX_JSON_DEPTH:
        return None
    return Problem("json_too_deep", f"the JSON body nests {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted",
                   limit=MAX_JSON_DEPTH,
                   hint="send the data flatter: no field of this API needs more than a few levels")
