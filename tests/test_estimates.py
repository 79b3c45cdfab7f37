"""spinbot.estimates: the prior, the fit, and how far history may move an estimate."""

from __future__ import annotations

import random

import pytest

from spinbot.estimates import BOUND, EMPTY, EstimateTable, Run, feature_value, learned_manifest, measure, prior
from spinbot.manifest import CostFeature, Estimate, MergedManifest, ServiceSpec

TTS = ServiceSpec(
    id="tts.synthesize", planes=["gpu"], description="speech", params={"type": "object"},
    estimate=Estimate(duration_s=3.0, memory_mb=200),
    features=[CostFeature(name="chars", of=["params.text"], typical=450)],
)
PUBLISH = ServiceSpec(id="artifact.publish", planes=["control"], description="publish", params={"type": "object"},
                      estimate=Estimate(duration_s=0.2, memory_mb=0))
SPECS = {s.id: s for s in (TTS, PUBLISH)}


def runs(n: int, *, per_char: float = 0.02, base: float = 0.5, device: str = "", seed: int = 1) -> list[Run]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        chars = rng.randint(100, 2000)
        out.append(Run("tts.synthesize", "gpu", device, (base + per_char * chars) * rng.lognormvariate(0, 0.1), chars))
    return out


def test_measure_reads_numbers_text_artifacts_and_lists() -> None:
    assert measure(3) == 3.0 and measure("héllo") == 5.0 and measure({"key": "k", "size": 10}) == 10.0
    assert measure([{"key": "a", "size": 1}, {"key": "b", "size": 2}]) == 3.0
    assert measure(True) is None and measure({"$node": "a", "output": "text"}) is None and measure(None) is None
    product = CostFeature(name="pixels", of=["params.width", "params.height"], typical=1)
    assert feature_value(product, {"width": 4, "height": 3}, None) == 12.0
    assert feature_value(product, {"width": 4}, None) is None


def test_without_history_the_declaration_scaled_by_the_feature() -> None:
    assert prior(TTS, None) == pytest.approx(3.0)
    assert prior(TTS, 450) == pytest.approx(3.0)
    assert prior(TTS, 4500) == pytest.approx(3.0 * (0.2 + 0.8 * 10))
    span = EMPTY.estimate(TTS, "gpu", 450)
    assert span.runs == 0 and span.seconds == pytest.approx(3.0) and span.low < span.seconds < span.high


def test_the_fit_learns_seconds_per_character() -> None:
    table = EstimateTable.fit(SPECS, runs(12))
    for chars in (200, 1000, 1800):
        truth = 0.5 + 0.02 * chars
        got = table.estimate(TTS, "gpu", chars)
        assert got.runs == 12
        assert got.seconds == pytest.approx(truth, rel=0.25)
        assert got.low < got.seconds < got.high


def test_a_crashed_or_stalled_run_does_not_move_the_median() -> None:
    history = runs(9)
    history.insert(4, Run("tts.synthesize", "gpu", "", 600.0, 300))  # stalled until a timeout
    history.insert(6, Run("tts.synthesize", "gpu", "", 0.001, 1500))  # died at once
    got = EstimateTable.fit(SPECS, history).estimate(TTS, "gpu", 1000)
    assert got.seconds == pytest.approx(20.5, rel=0.25)


def test_history_is_bounded_by_the_prior_and_stays_with_its_device() -> None:
    absurd = [Run("tts.synthesize", "gpu", "", 1e6, 450) for _ in range(20)]
    got = EstimateTable.fit(SPECS, absurd).estimate(TTS, "gpu", 450)
    assert got.seconds == pytest.approx(3.0 * BOUND)
    table = EstimateTable.fit(SPECS, runs(10, per_char=0.2, device="slow-cpu"))
    assert table.estimate(TTS, "gpu", 450, devices=["H200"]).runs == 0  # another device's history: the prior
    assert table.estimate(TTS, "gpu", 450, devices=["slow-cpu"]).runs == 10
    assert table.estimate(TTS, "control", 450, devices=["slow-cpu"]).runs == 0


def test_the_range_is_bounded_by_the_prior_too() -> None:
    """Split history (runs that ended at once and runs that stalled) gave an ~80 % range of 0.0001 s to
    97 days around a bounded 30 s: the plan card showed it. The range keeps to the estimate's bounds."""
    split = [Run("tts.synthesize", "gpu", "", s, 450) for s in (0.001, 0.001, 3000, 3000, 0.002, 2500)]
    got = EstimateTable.fit(SPECS, split).estimate(TTS, "gpu", 450)
    assert 3.0 / BOUND <= got.low <= got.seconds <= got.high <= 3.0 * BOUND


def test_few_runs_lean_on_the_prior() -> None:
    one = EstimateTable.fit(SPECS, [Run("tts.synthesize", "gpu", "", 30.0, 450)]).estimate(TTS, "gpu", 450)
    assert 3.0 < one.seconds < 30.0 / 2  # one run moves it, not all the way
    many = EstimateTable.fit(SPECS, [Run("tts.synthesize", "gpu", "", 30.0, 450)] * 8).estimate(TTS, "gpu", 450)
    assert many.seconds == pytest.approx(30.0, rel=0.25)


def test_services_without_features_learn_their_median() -> None:
    history = [Run("artifact.publish", "control", "", s, None, 50.0) for s in (1.0, 1.2, 0.9, 1.1, 1.0)]
    table = EstimateTable.fit(SPECS, history)
    assert table.estimate(PUBLISH, "control", None).seconds == pytest.approx(1.0, rel=0.2)
    assert table.memory_mb(PUBLISH, "control") == 50
    manifest = learned_manifest(MergedManifest(services=dict(SPECS)), table)
    assert manifest.services["artifact.publish"].estimate.duration_s == pytest.approx(1.0, rel=0.2)
    assert SPECS["artifact.publish"].estimate.duration_s == 0.2  # the original is untouched
