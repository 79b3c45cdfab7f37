"""The evaluator's estimate with a learned table and the node cache's reuse (both passed in as data)."""

from __future__ import annotations

import pytest

from evaluator import evaluate
from spinbot.estimates import EstimateTable, Run
from tests.evaluator.declared import declared_manifest
from tests.evaluator.test_evaluator import talking_head

MANIFEST = declared_manifest()


def test_a_learned_table_sets_each_node_and_the_range() -> None:
    declared = evaluate(talking_head(), MANIFEST).estimate
    runs = [Run("video.animate_portrait", "gpu", "", 60.0, None) for _ in range(10)]
    learned = evaluate(talking_head(), MANIFEST, estimates=EstimateTable.fit(MANIFEST.services, runs)).estimate
    assert declared is not None and learned is not None
    assert learned.by_node["anim"] == pytest.approx(60.0, rel=0.1)  # ten runs, a little of the prior left
    assert learned.duration_s == pytest.approx(declared.duration_s + learned.by_node["anim"] - declared.by_node["anim"],
                                               abs=1e-3)
    assert learned.learned_runs == 10 and declared.learned_runs == 0
    assert learned.low_s is not None and learned.high_s is not None
    assert learned.low_s < learned.duration_s < learned.high_s


def test_reused_nodes_cost_nothing_and_are_named() -> None:
    full = evaluate(talking_head(), MANIFEST).estimate
    v = evaluate(talking_head(), MANIFEST, reused={"script", "img"})
    assert full is not None and v.estimate is not None and v.ok
    assert v.estimate.by_node["script"] == 0 and v.estimate.by_node["img"] == 0
    assert v.estimate.duration_s < full.duration_s
    assert v.estimate.reused == ["img", "script"]
    assert v.estimate.summary.endswith(": img and script are reused")


def test_a_long_text_is_estimated_longer() -> None:
    g = talking_head()
    g["nodes"][1]["params"]["text"] = "word " * 2000
    long = evaluate(g, MANIFEST).estimate
    short = evaluate(talking_head(), MANIFEST).estimate
    assert long is not None and short is not None and long.by_node["tts"] > 5 * short.by_node["tts"]
