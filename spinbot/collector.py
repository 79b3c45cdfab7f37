"""The garbage collector's policy for the long-running processes (the API, the executors).

After start-up, `settle()` collects once, freezes what is left (imports, registries, the planner's
graph: never garbage, never scanned again: gc.freeze, as Instagram's servers do) and raises the
thresholds. CPython's defaults (700, 10, 10) collect the young generation every 700 net allocations
of tracked objects and the whole heap whenever the objects promoted since the last full collection
reach a quarter of it; with 10,000 open event streams each full collection scanned about two million
objects and paused the API 1-2 s, several times while the streams opened (issue 26, bench/sse.py).
With a young generation of GEN0 and GEN2 middle collections between full ones, a full collection
needs GEN0 x GEN1 x GEN2 net new tracked objects: the streams of a busy API no longer trigger it,
and cyclic garbage is still freed (young cycles by the cheap collections, old ones by the rare full one).
"""

from __future__ import annotations

import gc

#: net new tracked objects between young collections (CPython: 700); one such collection scans at most these
GEN0 = 20_000
#: young collections per middle collection (CPython: 10)
GEN1 = 10
#: middle collections per full one, at the least (CPython: 10; a full one also waits for 25 % growth)
GEN2 = 50


def settle() -> None:
    """Collect, freeze the survivors out of the collector's view, and set the thresholds above; once, when
    a process has started (its imports and start-up objects made)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0, GEN1, GEN2)
