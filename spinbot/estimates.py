"""Learned duration estimates: a small model per (service, plane, device), the declaration as its prior. Pure.

A service declares what its run time grows with (`ServiceSpec.features`, e.g. characters of text) and a
typical duration at a typical feature value. The prior is `duration_s * (FIXED + (1 - FIXED) * x / typical)`.
From finished runs (seconds, feature value) a fit is made: Theil-Sen (median of pairwise slopes, robust
to a crashed or stalled run) when the feature varies enough, else the median ratio to the prior. An
estimate blends fit and prior in log space with the weight n / (n + k), so the prior rules until there
are runs; it is always bounded to [prior / BOUND, prior * BOUND], so skewed or foreign history cannot
give absurd values. Ranges are the ~80 % band of the fit's robust log-residual spread, within the same bounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from spinbot.manifest import CostFeature, Estimate, MergedManifest, OutputSize, ServiceSpec

#: Share of the declared duration that does not grow with the feature (start-up, model load).
FIXED = 0.2
#: Estimates stay within this factor of the prior, whatever the history says.
BOUND = 10.0
#: The prior's log-spread (a factor of 2) and the z of an ~80 % band.
PRIOR_SPREAD = math.log(2.0)
Z80 = 1.2816
#: Prior weight, in runs: strong while there are under MIN_RUNS runs, then weak.
K_FEW, K_MANY, MIN_RUNS = 2.0, 0.5, 3
#: Runs per key a fit uses (the newest).
MAX_RUNS = 50
MIN_SECONDS = 1e-3
#: Characters a spoken word takes in text (English prose, the space and punctuation included; the embedded
#: model's scripts ran ~6.3): how speech seconds are predicted from a text's length before it is spoken.
CHARS_PER_WORD = 6.3


@dataclass(frozen=True, slots=True)
class Run:
    """One finished node: its service, where it ran, how long it took (seconds) and its feature value."""

    service: str
    plane: str
    device: str
    seconds: float
    feature: float | None = None
    peak_mb: float | None = None


@dataclass(frozen=True, slots=True)
class Span:
    """An estimate in seconds with its ~80 % range; `runs` is how many runs it learned from (0: declared)."""

    seconds: float
    low: float
    high: float
    runs: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 3), "low": round(self.low, 3), "high": round(self.high, 3),
                "runs": self.runs}


@dataclass(frozen=True, slots=True)
class Fit:
    """seconds = intercept + slope * feature (slope 0 without a feature), from `runs` runs."""

    intercept: float
    slope: float
    spread: float
    runs: int
    peak_mb: float | None = None

    def at(self, x: float) -> float:
        return max(MIN_SECONDS, self.intercept + self.slope * x)


# ---- features --------------------------------------------------------------------------------


def measure(value: Any) -> float | None:
    """A value's size: a number itself, a string's characters, an artifact's bytes, a list's sum; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return float(len(value))
    if isinstance(value, dict):
        size = value.get("size")
        return float(size) if isinstance(size, int | float) and not isinstance(size, bool) else None
    if isinstance(value, list):
        parts = [measure(v) for v in value]
        return sum(p for p in parts if p is not None) if parts and all(p is not None for p in parts) else None
    return None


def feature_value(feature: CostFeature, params: Mapping[str, Any], outputs: Mapping[str, Any] | None) -> float | None:
    """The product of the values at `feature.of` (params resolved or literal); None if any is unknown."""
    product = 1.0
    for path in feature.of:
        where, _, name = path.partition(".")
        source = params if where == "params" else (outputs or {})
        got = measure(source.get(name))
        if got is None:
            return None
        product *= got
    return product


def _planned(path: str, spec: ServiceSpec, params: Mapping[str, Any],
             predicted: Mapping[str, Mapping[str, float]]) -> float | None:
    """A `params.X` or `params.X.OUTPUT` path's value before the run: a literal's measure, a reference's
    upstream prediction, else the param's schema default."""
    _, _, rest = path.partition(".")
    name, _, output = rest.partition(".")
    value = params.get(name, spec.params.get("properties", {}).get(name, {}).get("default"))
    if isinstance(value, dict) and "$node" in value:
        return predicted.get(str(value["$node"]), {}).get(output or str(value.get("output")))
    return measure(value) if not output else None


def _size(rule: OutputSize, spec: ServiceSpec, params: Mapping[str, Any],
          predicted: Mapping[str, Mapping[str, float]]) -> float | None:
    of = [_planned(p, spec, params, predicted) for p in rule.of]
    per = [_planned(p, spec, params, predicted) for p in rule.per]
    if any(v is None for v in of) or any(not v for v in per):
        return None
    return rule.scale * math.prod(v or 0.0 for v in of) / math.prod(v or 1.0 for v in per)


def predict_outputs(
    nodes: Iterable[tuple[str, ServiceSpec | None, Mapping[str, Any]]],
) -> dict[str, dict[str, float]]:
    """Each node's outputs that its service `predicts` (OutputSize) from its params and the predictions
    upstream, for (node id, spec, params) in topological order: {node: {output: value}}; unknown ones left out."""
    predicted: dict[str, dict[str, float]] = {}
    for nid, spec, params in nodes:
        if spec is None:
            continue
        got = {out: v for out, rule in spec.predicts.items() if (v := _size(rule, spec, params, predicted)) is not None}
        if got:
            predicted[nid] = got
    return predicted


def planned_feature(spec: ServiceSpec, params: Mapping[str, Any],
                    predicted: Mapping[str, Mapping[str, float]], node: str) -> float | None:
    """The primary feature before the run: literal params measured, references and outputs from `predicted`."""
    if not spec.features:
        return None
    product = 1.0
    for path in spec.features[0].of:
        where, _, name = path.partition(".")
        got = predicted.get(node, {}).get(name) if where == "outputs" else _planned(path, spec, params, predicted)
        if got is None:
            return None
        product *= got
    return product


def features_of(spec: ServiceSpec, params: Mapping[str, Any], outputs: Mapping[str, Any] | None = None) -> float | None:
    """The service's primary (first declared) feature for these params/outputs; None if none or unknown."""
    return feature_value(spec.features[0], params, outputs) if spec.features else None


def prior(spec: ServiceSpec, x: float | None) -> float:
    """The declared duration scaled to feature value `x` (the typical value when unknown)."""
    d = max(spec.estimate.duration_s, MIN_SECONDS)
    if not spec.features or x is None:
        return d
    return d * (FIXED + (1 - FIXED) * max(x, 0.0) / spec.features[0].typical)


# ---- fitting ---------------------------------------------------------------------------------


def _theil_sen(xs: list[float], ys: list[float]) -> tuple[float, float]:
    slopes = [(ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(len(xs)) for j in range(i + 1, len(xs))
              if xs[j] != xs[i]]
    slope = max(0.0, median(slopes)) if slopes else 0.0
    return max(0.0, median(y - slope * x for x, y in zip(xs, ys, strict=True))), slope


def fit(spec: ServiceSpec, runs: list[Run]) -> Fit | None:
    """The fit of one key's runs (newest last); None without usable runs."""
    runs = [r for r in runs if r.seconds > 0 and math.isfinite(r.seconds)][-MAX_RUNS:]
    if not runs:
        return None
    peaks = sorted(r.peak_mb for r in runs if r.peak_mb is not None)
    peak = peaks[int(0.9 * (len(peaks) - 1))] if len(peaks) >= MIN_RUNS else None
    with_x = [r for r in runs if r.feature is not None and r.feature > 0] if spec.features else []
    if len(with_x) >= 4 and max(r.feature or 0 for r in with_x) >= 1.3 * min(r.feature or 0 for r in with_x):
        xs, ys = [r.feature or 0.0 for r in with_x], [r.seconds for r in with_x]
        intercept, slope = _theil_sen(xs, ys)
        used = with_x
    else:  # the median ratio to the prior: its shape, learned scale
        scale = median(r.seconds / prior(spec, r.feature) for r in runs)
        d, typical = spec.estimate.duration_s, (spec.features[0].typical if spec.features else None)
        intercept = scale * d * (FIXED if typical else 1.0)
        slope = scale * d * (1 - FIXED) / typical if typical else 0.0
        used = runs
    base = Fit(intercept, slope, 0.0, len(used), peak)
    typical = spec.features[0].typical if spec.features else 0.0
    residuals = [abs(math.log(r.seconds / base.at(typical if r.feature is None else r.feature))) for r in used]
    return Fit(intercept, slope, 1.4826 * median(residuals), len(used), peak)


def blend(spec: ServiceSpec, got: Fit | None, x: float | None) -> Span:
    """The estimate at feature value `x`: fit and prior blended by the fit's runs, bounded by the prior."""
    p = prior(spec, x)
    if got is None:
        return Span(p, p * math.exp(-Z80 * PRIOR_SPREAD), p * math.exp(Z80 * PRIOR_SPREAD), 0)
    xv = x if x is not None else (spec.features[0].typical if spec.features else 0.0)
    n = got.runs
    w = n / (n + (K_FEW if n < MIN_RUNS else K_MANY))
    seconds = math.exp(w * math.log(got.at(xv)) + (1 - w) * math.log(p))
    seconds = min(p * BOUND, max(p / BOUND, seconds))
    spread = max(0.05, w * got.spread + (1 - w) * PRIOR_SPREAD)
    low, high = seconds * math.exp(-Z80 * spread), seconds * math.exp(Z80 * spread)
    return Span(seconds, max(p / BOUND, low), min(p * BOUND, high), n)  # the range keeps to the same bounds


@dataclass(frozen=True)
class EstimateTable:
    """Fits by (service, plane, device); a lookup is a dict access and a few floats. Build with `EstimateTable.fit`."""

    fits: dict[tuple[str, str, str], Fit] = field(default_factory=dict)

    @classmethod
    def fit(cls, specs: Mapping[str, ServiceSpec], runs: Iterable[Run]) -> EstimateTable:
        """Group runs (oldest first) by key and fit each; runs of services not in `specs` are ignored."""
        groups: dict[tuple[str, str, str], list[Run]] = {}
        for r in runs:
            if r.service in specs:
                groups.setdefault((r.service, r.plane, r.device), []).append(r)
        fits = {k: f for k, rs in groups.items() if (f := fit(specs[k[0]], rs)) is not None}
        return cls(fits)

    def lookup(self, service: str, plane: str, devices: Iterable[str] = ()) -> Fit | None:
        """The fit for `service` on `plane`: of one of `devices` (the most runs), else of an unnamed device."""
        best = None
        for d in devices:
            f = self.fits.get((service, plane, d))
            if f is not None and (best is None or f.runs > best.runs):
                best = f
        return best or self.fits.get((service, plane, ""))

    def estimate(
        self, spec: ServiceSpec, plane: str, x: float | None, devices: Iterable[str] = ()
    ) -> Span:
        """Seconds (with range) for `spec` on `plane` at feature value `x` (None: typical or unknown)."""
        return blend(spec, self.lookup(spec.id, plane, devices), x)

    def memory_mb(self, spec: ServiceSpec, plane: str, devices: Iterable[str] = ()) -> int:
        """The 90th percentile of measured peaks (3+ runs), bounded by BOUND x the declaration; else declared."""
        got = self.lookup(spec.id, plane, devices)
        declared = spec.estimate.memory_mb
        if got is None or got.peak_mb is None:
            return declared
        return int(min(got.peak_mb, declared * BOUND) if declared else got.peak_mb)


EMPTY = EstimateTable()


def learned_manifest(manifest: MergedManifest, table: EstimateTable) -> MergedManifest:
    """A copy of `manifest` whose services' estimates are the learned ones at their typical feature value:
    what the planner's builder weighs plans and nodes by (planner.builder ranks by estimate.duration_s)."""
    if not table.fits:
        return manifest
    devices = {p: [str(d.get("name", "")) for d in s.devices] for p, s in manifest.planes.items()}
    services = {}
    for sid, spec in manifest.services.items():
        plane = spec.planes[0] if spec.planes else "control"
        span = table.estimate(spec, plane, None, devices.get(plane, ()))
        memory = table.memory_mb(spec, plane, devices.get(plane, ()))
        learned = Estimate(duration_s=round(span.seconds, 3), memory_mb=memory)
        services[sid] = spec.model_copy(update={"estimate": learned})
    return manifest.model_copy(update={"services": services})
